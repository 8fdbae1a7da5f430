//! How a command fails, and the exit code the officer's scripts rely on.

use outpost_model::api::ErrorKind;

use crate::client::ClientError;
use crate::keys::KeyFileError;

/// Exit codes: 0 ok, 1 anything else, and these.
pub mod exit {
    pub const BAD_INPUT: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    /// The caller's role does not allow the request, or this node's rights
    /// in the fleet do not allow the change.
    pub const NOT_PERMITTED: u8 = 5;
    /// `outpost audit verify` found a post's audit log tampered with.
    pub const TAMPERED: u8 = 6;
    /// `outpost status --check`, by the most severe failed check.
    pub const UNHEALTHY_STORE: u8 = 10;
    pub const UNHEALTHY_DISK: u8 = 11;
    pub const UNHEALTHY_PEERS: u8 = 12;
    pub const UNHEALTHY_ROSTER: u8 = 13;
}

#[derive(Debug)]
pub enum Failure {
    Client(ClientError),
    Local {
        code: u8,
        message: String,
    },
    /// The answer was printed (as JSON too, with `--json`); only the exit
    /// code and a line on stderr remain to say it failed.
    Shown {
        code: u8,
        message: String,
    },
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure::Client(err)
    }
}

impl From<KeyFileError> for Failure {
    fn from(err: KeyFileError) -> Self {
        let code = match err {
            KeyFileError::Write { .. } => 1,
            _ => exit::BAD_INPUT,
        };
        Failure::Local { code, message: err.to_string() }
    }
}

impl Failure {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Failure::Local { code: exit::BAD_INPUT, message: message.into() }
    }

    pub fn code(&self) -> u8 {
        match self {
            Failure::Client(ClientError::Unreachable { .. }) => exit::UNREACHABLE,
            Failure::Client(ClientError::Api(err)) => match err.kind {
                ErrorKind::BadInput | ErrorKind::TooLarge | ErrorKind::UnsupportedVersion => exit::BAD_INPUT,
                ErrorKind::NotFound => exit::NOT_FOUND,
                ErrorKind::Forbidden => exit::NOT_PERMITTED,
                ErrorKind::Busy => exit::UNREACHABLE,
                _ => 1,
            },
            Failure::Client(_) => 1,
            Failure::Local { code, .. } | Failure::Shown { code, .. } => *code,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Client(err) => err.to_string(),
            Failure::Local { message, .. } | Failure::Shown { message, .. } => message.clone(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.code() {
            exit::BAD_INPUT => "bad_input",
            exit::UNREACHABLE => "unreachable",
            exit::NOT_FOUND => "not_found",
            exit::TAMPERED => "tampered",
            exit::NOT_PERMITTED => "not_permitted",
            _ => "error",
        }
    }
}
