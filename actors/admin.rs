//! Admin commands (SPEC §2 `P:admin`): parsing, the token check, the client.
//!
//! A command is a JSON object: `{"command": "hydrate", "categories": [..]?}`,
//! `{"command": "invalidate", "category": ".."}`, `{"command": "clear"}` or
//! `{"command": "status"}`, with optional `"reply_to"` (default
//! `P:admin:reply`) and `"token"`. When `admin.token` is set, the token is
//! compared in constant time (`subtle`); a command without the right token is
//! rejected and changes nothing. The daemon side (executing, replying) is in
//! `invalidation.rs`; [`send_command`] is the `admin` subcommand's client.

use horde_hydrator::category::Category;
use horde_hydrator::keys::{admin_channel, admin_reply_channel};
use horde_hydrator::settings::Settings;
use serde_json::{Map, Value};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Messages larger than this on either channel are ignored unread.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What an admin command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Empty: every configured category.
    Hydrate(Vec<Category>),
    Invalidate(Category),
    Clear,
    Status,
}

impl AdminCommand {
    pub fn name(&self) -> &'static str {
        match self {
            AdminCommand::Hydrate(_) => "hydrate",
            AdminCommand::Invalidate(_) => "invalidate",
            AdminCommand::Clear => "clear",
            AdminCommand::Status => "status",
        }
    }
}

/// The envelope of a command: what every command may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The `"command"` field as sent (for the reply), if it was a string.
    pub command_name: Option<String>,
    pub reply_to: Option<String>,
    pub token: Option<String>,
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
) -> Result<(Envelope, Result<AdminCommand, AdminParseError>), AdminParseError> {
    let value: Value = serde_json::from_slice(payload).map_err(|_| AdminParseError::Garbage)?;
    let Value::Object(obj) = value else { return Err(AdminParseError::Garbage) };
    let string = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let reply_to = string("reply_to").filter(|r| !r.is_empty() && r.len() <= 1024);
    let envelope = Envelope { command_name: string("command"), reply_to, token: string("token") };
    Ok((envelope, parse_command(&obj)))
}

fn parse_command(obj: &Map<String, Value>) -> Result<AdminCommand, AdminParseError> {
    let invalid = |m: String| Err(AdminParseError::Invalid(m));
    let Some(command) = obj.get("command").and_then(Value::as_str) else {
        return invalid("missing \"command\" (expected hydrate, invalidate, clear or status)".to_string());
    };
    match command {
        "hydrate" => match obj.get("categories") {
            None | Some(Value::Null) => Ok(AdminCommand::Hydrate(Vec::new())),
            Some(Value::Array(items)) => {
                let mut cats = Vec::with_capacity(items.len());
                for item in items {
                    let Some(name) = item.as_str() else {
                        return invalid("\"categories\" must be a list of category names".to_string());
                    };
                    match name.parse::<Category>() {
                        Ok(c) => cats.push(c),
                        Err(e) => return invalid(e.to_string()),
                    }
                }
                Ok(AdminCommand::Hydrate(cats))
            }
            Some(_) => invalid("\"categories\" must be a list of category names".to_string()),
        },
        "invalidate" => match obj.get("category").and_then(Value::as_str) {
            Some(name) => {
                name.parse::<Category>().map(AdminCommand::Invalidate).or_else(|e| invalid(e.to_string()))
            }
            None => invalid("invalidate needs \"category\"".to_string()),
        },
        "clear" => Ok(AdminCommand::Clear),
        "status" => Ok(AdminCommand::Status),
        other => {
            invalid(format!("unknown command {other:?} (expected hydrate, invalidate, clear or status)"))
        }
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
    #[error("no reply on {channel} within {timeout:?}")]
    Timeout { channel: String, timeout: Duration },
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
    mut command: Map<String, Value>,
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
    if let Some(token) = settings.admin.required_token() {
        command.insert("token".to_string(), Value::String(token.to_string()));
    }
    command.insert("reply_to".to_string(), Value::String(reply_channel.clone()));
    let payload = Value::Object(command).to_string();

    let client = crate::redis_client::client(&settings.redis).map_err(|e| err(e.to_string()))?;
    let connect_timeout = settings.redis.socket_timeout;
    let mut pubsub = tokio::time::timeout(connect_timeout, client.get_async_pubsub())
        .await
        .map_err(|_| err(format!("no connection within {connect_timeout:?}")))?
        .map_err(|e| err(e.to_string()))?;
    pubsub.subscribe(&reply_channel).await.map_err(|e| err(e.to_string()))?;
    let mut conn = tokio::time::timeout(connect_timeout, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| err(format!("no connection within {connect_timeout:?}")))?
        .map_err(|e| err(e.to_string()))?;
    let _ = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(horde_hydrator::leader::connection_name(&settings.leader.instance_id, "admin-client"))
        .query_async::<()>(&mut conn)
        .await;
    let channel = admin_channel(prefix);
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(&payload)
        .query_async(&mut conn)
        .await
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
        Err(_) => return Err(AdminClientError::Timeout { channel: reply_channel, timeout }),
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

    fn parse(s: &str) -> (Envelope, Result<AdminCommand, AdminParseError>) {
        parse_admin(s.as_bytes()).unwrap()
    }

    #[test]
    fn parses_the_four_commands() {
        assert_eq!(parse(r#"{"command":"status"}"#).1, Ok(AdminCommand::Status));
        assert_eq!(parse(r#"{"command":"clear"}"#).1, Ok(AdminCommand::Clear));
        assert_eq!(parse(r#"{"command":"hydrate"}"#).1, Ok(AdminCommand::Hydrate(vec![])));
        assert_eq!(
            parse(r#"{"command":"hydrate","categories":["text_generation"]}"#).1,
            Ok(AdminCommand::Hydrate(vec![Category::TextGeneration]))
        );
        assert_eq!(
            parse(r#"{"command":"invalidate","category":"image_generation"}"#).1,
            Ok(AdminCommand::Invalidate(Category::ImageGeneration))
        );
    }

    #[test]
    fn envelope_carries_reply_to_and_token() {
        let (env, cmd) = parse(r#"{"command":"clear","reply_to":"x:y","token":"t"}"#);
        assert_eq!(cmd, Ok(AdminCommand::Clear));
        assert_eq!(env.reply_to.as_deref(), Some("x:y"));
        assert_eq!(env.token.as_deref(), Some("t"));
        assert_eq!(env.command_name.as_deref(), Some("clear"));
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
