//! What the watch tells: a [`Notification`] and its kind.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use serde::Serialize;

use crate::usage;

/// What a [`Notification`] tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NotificationKind {
    /// The account had no event for the threshold (or, never active, signed up that long
    /// ago).
    Inactive,
    /// The account, reported inactive before, has an event again.
    Active,
}

/// One notification of one account. Turn it into an email or a chat message with its
/// [`Display`](fmt::Display) text, or use its fields.
///
/// As JSON (what [`WebhookNotifier`](super::WebhookNotifier) sends):
///
/// ```json
/// {
///   "kind": "inactive",
///   "watch": "inactive",
///   "accountId": 42,
///   "lastSeen": "2024-05-01T10:00:00Z",
///   "inactiveSince": "2024-05-01T10:00:00Z",
///   "signedUp": null,
///   "thresholdSeconds": 604800,
///   "detectedAt": "2024-05-09T08:00:00Z",
///   "text": "Account 42 has been inactive for 7 days: last seen 2024-05-01T10:00:00Z (threshold 7 days)."
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// Gone quiet, or back.
    pub kind: NotificationKind,
    /// The name of the watch that noticed.
    pub watch: String,
    /// The account.
    pub account_id: u64,
    /// The account's last event when it was noticed; `None` if it never had one.
    pub last_seen: Option<SystemTime>,
    /// The last event before the quiet period; `None` if the account was never active
    /// before it. For [`NotificationKind::Inactive`] this is `last_seen`.
    pub inactive_since: Option<SystemTime>,
    /// When the account signed up, if the application passed it as a known account.
    pub signed_up: Option<SystemTime>,
    /// The watch's threshold.
    pub threshold: Duration,
    /// When the watch noticed.
    pub detected_at: SystemTime,
    /// The reason in words and numbers, from the watch's
    /// [detector](super::WatchBuilder::with_detector); `None` without one.
    pub explanation: Option<String>,
}

/// Many notifications in one message: what a check found when it found more than the
/// watch's [flood limit](super::WatchBuilder::with_digest), or what waited for a
/// [scheduled digest](super::WatchBuilder::with_daily_digest). As JSON:
/// `{"watch", "detectedAt", "inactive": n, "active": n, "text", "notifications": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Digest {
    /// The name of the watch.
    pub watch: String,
    /// When the watch noticed.
    pub detected_at: SystemTime,
    /// The notifications, by account id.
    pub notifications: Vec<Notification>,
}

impl Digest {
    /// A sentence saying what happened, for a message's text.
    pub fn message(&self) -> String {
        let (inactive, active) = self.counts();
        let accounts = |n: usize| {
            if n == 1 {
                "1 account".to_owned()
            } else {
                format!("{n} accounts")
            }
        };
        format!(
            "{} went quiet and {} came back ({} watch, {}).",
            accounts(inactive),
            accounts(active),
            self.watch,
            usage::rfc3339(self.detected_at),
        )
    }

    fn counts(&self) -> (usize, usize) {
        let inactive = self
            .notifications
            .iter()
            .filter(|n| n.kind == NotificationKind::Inactive)
            .count();
        (inactive, self.notifications.len() - inactive)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct DigestJson<'a> {
            watch: &'a str,
            detected_at: String,
            inactive: usize,
            active: usize,
            text: String,
            notifications: &'a [Notification],
        }
        let (inactive, active) = self.counts();
        DigestJson {
            watch: &self.watch,
            detected_at: usage::rfc3339(self.detected_at),
            inactive,
            active,
            text: self.message(),
            notifications: &self.notifications,
        }
        .serialize(serializer)
    }
}

impl Notification {
    /// A sentence saying what happened, for a message's text.
    pub fn message(&self) -> String {
        let threshold = days_text(self.threshold);
        if let (NotificationKind::Inactive, Some(why)) = (self.kind, &self.explanation) {
            return format!("Account {} is at risk: {why}.", self.account_id);
        }
        match (self.kind, self.last_seen, self.signed_up) {
            (NotificationKind::Inactive, Some(last), _) => format!(
                "Account {} has been inactive for {}: last seen {} (threshold {threshold}).",
                self.account_id,
                days_text(self.detected_at.duration_since(last).unwrap_or_default()),
                usage::rfc3339(last),
            ),
            (NotificationKind::Inactive, None, Some(signed_up)) => format!(
                "Account {} has not been active since it signed up on {} (threshold {threshold}).",
                self.account_id,
                usage::rfc3339(signed_up),
            ),
            (NotificationKind::Inactive, None, None) => format!(
                "Account {} has never been active (threshold {threshold}).",
                self.account_id
            ),
            (NotificationKind::Active, last, _) => {
                let since = match self.inactive_since {
                    Some(t) => format!(", after no activity since {}", usage::rfc3339(t)),
                    None => String::new(),
                };
                let at = last.map_or_else(String::new, |t| {
                    format!(" (last seen {})", usage::rfc3339(t))
                });
                format!("Account {} is active again{at}{since}.", self.account_id)
            }
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationJson<'a> {
    pub(super) kind: NotificationKind,
    pub(super) watch: &'a str,
    pub(super) account_id: u64,
    pub(super) last_seen: Option<String>,
    pub(super) inactive_since: Option<String>,
    pub(super) signed_up: Option<String>,
    threshold_seconds: u64,
    pub(super) detected_at: String,
    pub(super) explanation: Option<&'a str>,
    pub(super) text: String,
}

impl Serialize for Notification {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        NotificationJson {
            kind: self.kind,
            watch: &self.watch,
            account_id: self.account_id,
            last_seen: self.last_seen.map(usage::rfc3339),
            inactive_since: self.inactive_since.map(usage::rfc3339),
            signed_up: self.signed_up.map(usage::rfc3339),
            threshold_seconds: self.threshold.as_secs(),
            detected_at: usage::rfc3339(self.detected_at),
            explanation: self.explanation.as_deref(),
            text: self.message(),
        }
        .serialize(serializer)
    }
}

/// `1 day`, `8 days`, `36 hours`: a duration as people say it.
fn days_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 86_400 == 0 || s >= 4 * 86_400 => match s / 86_400 {
            1 => "1 day".to_owned(),
            n => format!("{n} days"),
        },
        s if s >= 3_600 => format!("{} hours", s / 3_600),
        s => format!("{} minutes", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn canary_notifications_read_well() {
        let day = 86_400;
        let n = Notification {
            kind: NotificationKind::Inactive,
            watch: "inactive".into(),
            account_id: 42,
            last_seen: Some(UNIX_EPOCH + Duration::from_secs(1_714_557_600)),
            inactive_since: Some(UNIX_EPOCH + Duration::from_secs(1_714_557_600)),
            signed_up: None,
            threshold: Duration::from_secs(7 * day),
            detected_at: UNIX_EPOCH + Duration::from_secs(1_714_557_600 + 8 * day + 5),
            explanation: None,
        };
        assert_eq!(
            n.to_string(),
            "Account 42 has been inactive for 8 days: last seen 2024-05-01T10:00:00Z (threshold 7 days)."
        );
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["kind"], "inactive");
        assert_eq!(json["accountId"], 42);
        assert_eq!(json["lastSeen"], "2024-05-01T10:00:00Z");
        assert_eq!(json["signedUp"], serde_json::Value::Null);
        assert_eq!(json["thresholdSeconds"], 7 * day);
        assert_eq!(json["detectedAt"], "2024-05-09T10:00:05Z");
        assert_eq!(json["text"], n.to_string());

        let never = Notification {
            last_seen: None,
            inactive_since: None,
            signed_up: Some(UNIX_EPOCH),
            ..n.clone()
        };
        assert!(
            never
                .to_string()
                .contains("not been active since it signed up on 1970-01-01")
        );
        let back = Notification {
            kind: NotificationKind::Active,
            last_seen: Some(UNIX_EPOCH + Duration::from_secs(1_715_000_000)),
            ..n
        };
        assert_eq!(
            back.to_string(),
            "Account 42 is active again (last seen 2024-05-06T12:53:20Z), after no activity since 2024-05-01T10:00:00Z."
        );
        assert_eq!(days_text(Duration::from_secs(36 * 3600)), "36 hours");
        assert_eq!(days_text(Duration::from_secs(day)), "1 day");
    }
}
