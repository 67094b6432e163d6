using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SpIstio.Examples.Travel.Notifications;

/// <summary>
/// E-mail and SMS confirmations. Nothing is really sent: a notification is accepted (202,
/// <c>queued</c>) and kept in memory, which is all the demo needs to show in a trace.
/// </summary>
public static class NotificationsService
{
    /// <summary>The service name the demo captures it under.</summary>
    public const string Name = "notifications";

    /// <summary>Builds the notifications service (not started).</summary>
    public static WebApplication Build(TravelServiceOptions options)
    {
        var builder = TravelHost.CreateBuilder(options);
        var app = builder.Build();
        var sent = new ConcurrentDictionary<string, Notification>(StringComparer.Ordinal);
        var time = TimeProvider.System;

        TravelHost.MapHealth(app);
        app.MapPost("/notifications", (NotificationRequest request) =>
        {
            var channelOk = request.Channel switch
            {
                "email" => request.To.Contains('@', StringComparison.Ordinal),
                "sms" => request.To.StartsWith('+') && request.To.Length >= 8,
                _ => false,
            };
            if (!channelOk)
            {
                return TravelHost.Problem(400, "invalid_recipient", "Invalid recipient", "Channel must be email (to an address) or sms (to an E.164 number).");
            }

            var notification = new Notification("ntf_" + Guid.NewGuid().ToString("N")[..16], request.Channel, request.To, request.Template, "queued", time.GetUtcNow());
            sent[notification.NotificationId] = notification;
            return Results.Accepted("/notifications/" + notification.NotificationId, notification);
        });

        app.MapGet("/notifications/{id}", (string id) =>
            sent.TryGetValue(id, out var notification)
                ? Results.Ok(notification)
                : TravelHost.Problem(404, "notification_not_found", "Notification not found", "No notification " + id + "."));
        return app;
    }
}
