
Î
grpc_redaction_test.protosp.test.redaction"ï
SignInRequest
user (	Ruser
password (	Rpassword
note (	Rnote+
card (2.sp.test.redaction.CardRcard
cvv (Rcvv
tags (	Rtags
	order_ref (	RorderRef
mobile (	Rmobile
blob	 (Rblob"6
Card
number (	Rnumber
holder (	Rholder"i
SignInReply
session (	Rsession!
access_token (	RaccessToken

expires_in (R	expiresIn2V
AccountsJ
SignIn .sp.test.redaction.SignInRequest.sp.test.redaction.SignInReplyB)ª&SpIstio.Core.Tests.Redaction.Generatedbproto3