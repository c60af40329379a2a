//! Admin commands (SPEC §2 `P:admin`): parsing, the token check, the client.
//!
//! A command is a JSON object: `{"command": "hydrate", "categories": [..]?}`,
//! `{"command": "invalidate", "category": ".."}`, `{"command": "clear"}` or
//! `{"command": "status"}`, with optional `"reply_to"` (default
//! `P:admin:reply`) and `"token"`. When `admin.token` is set, the token is
//! compared in constant time (`subtle`); a command without the right token is
//! rejected and changes nothing. The daemon side (executing, replying) is in
//! `invalidation.rs`; [`send_command`] is the `admin` subcommand's client.

use crate::cache::RedisWrite;
use crate::status::StatusReply;
use horde_hydrator::category::Category;
use horde_hydrator::keys::{admin_channel, admin_reply_channel};
use horde_hydrator::settings::Settings;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Messages larger than this on either channel are ignored unread.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What an admin command asks for: the `"command"` field and its arguments,
/// as they travel on `P:admin` (`{"command": "hydrate", "categories": [..]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum AdminCommand {
    Hydrate {
        /// Empty (or absent, or null): every configured category.
        #[serde(default, with = "category_list")]
        categories: Vec<Category>,
    },
    Invalidate {
        #[serde(with = "category_name")]
        category: Category,
    },
    Clear,
    Status,
}

impl AdminCommand {
    pub fn name(&self) -> &'static str {
        match self {
            AdminCommand::Hydrate { .. } => "hydrate",
            AdminCommand::Invalidate { .. } => "invalidate",
            AdminCommand::Clear => "clear",
            AdminCommand::Status => "status",
        }
    }
}

/// A command with what every command may carry: the sender's `token` and
/// the channel to answer on (`reply_to`, default `P:admin:reply`). The
/// client sends `Envelope<AdminCommand>`; the daemon reads an
/// `Envelope<CommandName>` first (it always parses, so even an invalid
/// command can be answered) and the [`AdminCommand`] from the same object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<C> {
    #[serde(flatten)]
    pub command: C,
    /// A non-string token counts as none.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_string")]
    pub token: Option<String>,
    /// Empty, non-string or over 1024 bytes: the default channel.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "reply_channel")]
    pub reply_to: Option<String>,
}

/// The `"command"` field as sent, whatever it names (for the reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandName {
    #[serde(default, deserialize_with = "lenient_string")]
    pub command: Option<String>,
}

/// Why a message on the admin channel is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminParseError {
    /// Not a JSON object at all: ignored without a reply.
    #[error("not a JSON object")]
    Garbage,
    /// A JSON object, but not a valid command: answered with `ok: false`.
    #[error("{0}")]
    Invalid(String),
}

/// Split a message into its envelope and its command. The envelope is
/// returned even when the command is invalid, so the error can be answered.
pub fn parse_admin(
    payload: &[u8],
) -> Result<(Envelope<CommandName>, Result<AdminCommand, AdminParseError>), AdminParseError> {
    let value: Value = serde_json::from_slice(payload).map_err(|_| AdminParseError::Garbage)?;
    if !value.is_object() {
        return Err(AdminParseError::Garbage);
    }
    let envelope = Envelope::<CommandName>::deserialize(&value).map_err(|_| AdminParseError::Garbage)?;
    let command = match envelope.command.command {
        None => Err(AdminParseError::Invalid(format!("missing \"command\" (expected {EXPECTED})"))),
        Some(_) => AdminCommand::deserialize(&value).map_err(|e| AdminParseError::Invalid(e.to_string())),
    };
    Ok((envelope, command))
}

const EXPECTED: &str = "hydrate, invalidate, clear or status";

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn reply_channel<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(lenient_string(d)?.filter(|r| !r.is_empty() && r.len() <= 1024))
}

/// A category as its name.
mod category_name {
    use super::*;

    pub fn serialize<S: Serializer>(c: &Category, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Category, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A list of category names; `null` is the empty list.
mod category_list {
    use super::*;

    pub fn serialize<S: Serializer>(cats: &[Category], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(cats.iter().map(|c| c.as_str()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Category>, D::Error> {
        let names = Option::<Vec<String>>::deserialize(d)
            .map_err(|_| serde::de::Error::custom("\"categories\" must be a list of category names"))?;
        names.unwrap_or_default().iter().map(|n| n.parse().map_err(serde::de::Error::custom)).collect()
    }
}

// ---------------------------------------------------------------- replies

/// Every reply: `{"ok": …, "command": …, …the command's fields}`.
#[derive(Debug, Serialize)]
pub struct Reply {
    pub ok: bool,
    /// The command's name as sent (`null` when it had none).
    pub command: Option<String>,
    #[serde(flatten)]
    pub body: ReplyBody,
}

/// What a reply says besides `ok` and `command`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ReplyBody {
    Hydrate {
        #[serde(with = "category_list")]
        categories: Vec<Category>,
        /// A cycle was running: this one runs right after it.
        queued: bool,
    },
    Invalidate {
        #[serde(with = "category_name")]
        category: Category,
        redis: RedisWrite,
    },
    Clear {
        redis: RedisWrite,
    },
    Status(Box<StatusReply>),
    Error {
        error: String,
    },
}

impl Reply {
    /// A command that was carried out.
    pub fn ok(command: &AdminCommand, body: ReplyBody) -> Reply {
        Reply { ok: true, command: Some(command.name().to_string()), body }
    }

    /// A command that was understood but could not be carried out.
    pub fn failed(command: &AdminCommand, error: impl Into<String>) -> Reply {
        Reply::error(Some(command.name().to_string()), error)
    }

    /// A command that failed or was refused, answered under the name it was sent with.
    pub fn error(command: Option<String>, error: impl Into<String>) -> Reply {
        Reply { ok: false, command, body: ReplyBody::Error { error: error.into() } }
    }

    /// The JSON text published on the reply channel.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"ok\":false,\"command\":null,\"error\":\"cannot serialise the reply: {e}\"}}")
        })
    }
}

/// May a command with `given` run? Always when no token is required;
/// otherwise only with the same token, compared in constant time.
pub fn authorized(required: Option<&str>, given: Option<&str>) -> bool {
    match required {
        None => true,
        Some(required) => {
            let given = given.unwrap_or("");
            bool::from(required.as_bytes().ct_eq(given.as_bytes()))
        }
    }
}

// ---------------------------------------------------------------- the client

/// The `admin` subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error(
        "redis is disabled in the settings (redis.enabled = false): admin commands travel over Redis pub/sub"
    )]
    RedisDisabled,
    #[error("redis {url}: {message}")]
    Redis { url: String, message: String },
    #[error("no daemon is listening on {0} (is `horde-hydrator run` running with the same redis.url and key_prefix?)")]
    NoListener(String),
    #[error("no reply on {channel} within {timeout:?}, though {receivers} daemon connection(s) received the command: {hint}")]
    Timeout { channel: String, timeout: Duration, receivers: i64, hint: &'static str },
    #[error("the reply is not JSON: {0}")]
    BadReply(String),
}

/// After the first reply, how long to wait for more (replicas each answer `status`).
pub const MORE_REPLIES_WINDOW: Duration = Duration::from_millis(500);

/// Publish `command` (a JSON object; token and reply channel are added) and
/// wait for the daemons' replies on a channel of our own: the first within
/// `timeout`, then every one that arrives within [`MORE_REPLIES_WINDOW`] after it.
pub async fn send_command(
    settings: &Settings,
    command: AdminCommand,
    timeout: Duration,
) -> Result<Vec<Value>, AdminClientError> {
    use futures_util::StreamExt;
    if !settings.redis.enabled {
        return Err(AdminClientError::RedisDisabled);
    }
    let url = settings.redis.url.redacted();
    let err = |message: String| AdminClientError::Redis { url: url.clone(), message };
    let prefix = &settings.redis.key_prefix;
    let reply_channel = format!("{}:{:016x}", admin_reply_channel(prefix), rand::random::<u64>());
    let envelope = Envelope {
        command,
        token: settings.admin.required_token().map(str::to_string),
        reply_to: Some(reply_channel.clone()),
    };
    let payload =
        serde_json::to_string(&envelope).map_err(|e| err(format!("cannot encode the command: {e}")))?;

    let client = crate::redis_client::client(&settings.redis).map_err(|e| err(e.to_string()))?;
    // Every step before the wait for the reply is bounded by the socket
    // timeout: a Redis that goes silent is an error naming the step, not a hang.
    let limit = settings.redis.socket_timeout;
    let step = |what: &'static str| move |_| err(format!("{what} within {limit:?}"));
    let mut pubsub = tokio::time::timeout(limit, client.get_async_pubsub())
        .await
        .map_err(step("no connection"))?
        .map_err(|e| err(e.to_string()))?;
    tokio::time::timeout(limit, pubsub.subscribe(&reply_channel))
        .await
        .map_err(step("no answer to SUBSCRIBE"))?
        .map_err(|e| err(e.to_string()))?;
    let mut conn = tokio::time::timeout(limit, client.get_multiplexed_async_connection())
        .await
        .map_err(step("no connection"))?
        .map_err(|e| err(e.to_string()))?;
    let name = horde_hydrator::leader::connection_name(&settings.leader.instance_id, "admin-client");
    let _ = tokio::time::timeout(
        limit,
        redis::cmd("CLIENT").arg("SETNAME").arg(name).query_async::<()>(&mut conn),
    )
    .await;
    let channel = admin_channel(prefix);
    let receivers: i64 =
        tokio::time::timeout(limit, redis::cmd("PUBLISH").arg(&channel).arg(&payload).query_async(&mut conn))
            .await
            .map_err(step("no answer to PUBLISH"))?
            .map_err(|e| err(e.to_string()))?;
    if receivers == 0 {
        return Err(AdminClientError::NoListener(channel));
    }
    let mut stream = pubsub.on_message();
    let parse = |msg: redis::Msg| -> Result<Value, AdminClientError> {
        serde_json::from_slice(msg.get_payload_bytes()).map_err(|e| AdminClientError::BadReply(e.to_string()))
    };
    let first = match tokio::time::timeout(timeout, stream.next()).await {
        Ok(Some(msg)) => parse(msg)?,
        Ok(None) => return Err(err("connection closed while waiting for the reply".to_string())),
        Err(_) => {
            let hint = if matches!(envelope.command, AdminCommand::Status) {
                "every daemon answers status; see their logs (a daemon that cannot publish its reply logs why)"
            } else {
                "with replicas only the leader answers it, and while a stopped leader's lease runs out \
                 (up to leader.lease_seconds) none leads: send it again in a few seconds; \
                 else see the daemons' logs"
            };
            return Err(AdminClientError::Timeout { channel: reply_channel, timeout, receivers, hint });
        }
    };
    let mut replies = vec![first];
    let until = tokio::time::Instant::now() + MORE_REPLIES_WINDOW;
    while let Ok(Some(msg)) = tokio::time::timeout_at(until, stream.next()).await {
        replies.push(parse(msg)?);
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Envelope<CommandName>, Result<AdminCommand, AdminParseError>) {
        parse_admin(s.as_bytes()).unwrap()
    }

    #[test]
    fn parses_the_four_commands() {
        assert_eq!(parse(r#"{"command":"status"}"#).1, Ok(AdminCommand::Status));
        assert_eq!(parse(r#"{"command":"clear"}"#).1, Ok(AdminCommand::Clear));
        assert_eq!(parse(r#"{"command":"hydrate"}"#).1, Ok(AdminCommand::Hydrate { categories: vec![] }));
        assert_eq!(
            parse(r#"{"command":"hydrate","categories":null}"#).1,
            Ok(AdminCommand::Hydrate { categories: vec![] })
        );
        assert_eq!(
            parse(r#"{"command":"hydrate","categories":["text_generation"]}"#).1,
            Ok(AdminCommand::Hydrate { categories: vec![Category::TextGeneration] })
        );
        assert_eq!(
            parse(r#"{"command":"invalidate","category":"image_generation"}"#).1,
            Ok(AdminCommand::Invalidate { category: Category::ImageGeneration })
        );
    }

    #[test]
    fn envelope_carries_reply_to_and_token() {
        let (env, cmd) = parse(r#"{"command":"clear","reply_to":"x:y","token":"t"}"#);
        assert_eq!(cmd, Ok(AdminCommand::Clear));
        assert_eq!(env.reply_to.as_deref(), Some("x:y"));
        assert_eq!(env.token.as_deref(), Some("t"));
        assert_eq!(env.command.command.as_deref(), Some("clear"));
        let (env, _) = parse(r#"{"command":"clear","reply_to":7,"token":12345}"#);
        assert_eq!((env.reply_to, env.token), (None, None), "non-string fields count as absent");
        let (env, _) = parse(r#"{"command":"clear","reply_to":""}"#);
        assert_eq!(env.reply_to, None, "an empty reply_to means the default channel");
    }

    #[test]
    fn rejects_bad_commands_with_reasons() {
        let bad = |s: &str| match parse(s).1 {
            Err(AdminParseError::Invalid(m)) => m,
            other => panic!("{s}: {other:?}"),
        };
        assert!(bad(r#"{"command":"reboot"}"#).contains("reboot"));
        assert!(bad(r#"{"nocommand":1}"#).contains("missing"));
        assert!(bad(r#"{"command":"invalidate"}"#).contains("category"));
        assert!(bad(r#"{"command":"invalidate","category":"clip"}"#).contains("clip"));
        assert!(bad(r#"{"command":"hydrate","categories":"text_generation"}"#).contains("list"));
        assert!(bad(r#"{"command":"hydrate","categories":[1]}"#).contains("list"));
    }

    #[test]
    fn the_client_sends_what_the_daemon_parses() {
        let sent = Envelope {
            command: AdminCommand::Hydrate { categories: vec![Category::TextGeneration] },
            token: Some("t".to_string()),
            reply_to: Some("p:admin:reply:1".to_string()),
        };
        let text = serde_json::to_string(&sent).unwrap();
        assert_eq!(
            text,
            r#"{"command":"hydrate","categories":["text_generation"],"token":"t","reply_to":"p:admin:reply:1"}"#
        );
        let (env, cmd) = parse(&text);
        assert_eq!(cmd, Ok(sent.command.clone()));
        assert_eq!((env.token, env.reply_to), (sent.token, sent.reply_to));
        for command in [AdminCommand::Clear, AdminCommand::Status] {
            let text =
                serde_json::to_string(&Envelope { command: command.clone(), token: None, reply_to: None })
                    .unwrap();
            assert_eq!(text, format!(r#"{{"command":"{}"}}"#, command.name()));
            assert_eq!(parse(&text).1, Ok(command));
        }
    }

    #[test]
    fn replies_keep_the_documented_shape() {
        let hydrate = AdminCommand::Hydrate { categories: vec![] };
        let reply = Reply::ok(
            &hydrate,
            ReplyBody::Hydrate { categories: vec![Category::ImageGeneration], queued: true },
        );
        assert_eq!(
            reply.to_json(),
            r#"{"ok":true,"command":"hydrate","categories":["image_generation"],"queued":true}"#
        );
        let inv = AdminCommand::Invalidate { category: Category::TextGeneration };
        let reply = Reply::ok(
            &inv,
            ReplyBody::Invalidate {
                category: Category::TextGeneration,
                redis: RedisWrite::Failed("down".into()),
            },
        );
        assert_eq!(
            reply.to_json(),
            r#"{"ok":true,"command":"invalidate","category":"text_generation","redis":"failed: down"}"#
        );
        let reply = Reply::ok(&AdminCommand::Clear, ReplyBody::Clear { redis: RedisWrite::Written });
        assert_eq!(reply.to_json(), r#"{"ok":true,"command":"clear","redis":"written"}"#);
        let reply = Reply::failed(&AdminCommand::Clear, "mailbox closed");
        assert_eq!(reply.to_json(), r#"{"ok":false,"command":"clear","error":"mailbox closed"}"#);
        let reply = Reply::error(None, "unauthorized: missing or wrong token");
        assert_eq!(
            reply.to_json(),
            r#"{"ok":false,"command":null,"error":"unauthorized: missing or wrong token"}"#
        );
    }

    #[test]
    fn garbage_is_not_a_command() {
        assert_eq!(parse_admin(b"\xff\x00binary").unwrap_err(), AdminParseError::Garbage);
        assert_eq!(parse_admin(b"[1,2]").unwrap_err(), AdminParseError::Garbage);
        assert_eq!(parse_admin(b"\"status\"").unwrap_err(), AdminParseError::Garbage);
        assert_eq!(parse_admin(b"{\"command\":").unwrap_err(), AdminParseError::Garbage);
    }

    #[test]
    fn token_check() {
        assert!(authorized(None, None));
        assert!(authorized(None, Some("anything")));
        assert!(authorized(Some("s3cret"), Some("s3cret")));
        assert!(!authorized(Some("s3cret"), Some("s3cres")));
        assert!(!authorized(Some("s3cret"), Some("s3cret ")));
        assert!(!authorized(Some("s3cret"), Some("")));
        assert!(!authorized(Some("s3cret"), None));
    }
}
