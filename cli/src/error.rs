//! etcdctl's exit codes and etcrctl's error reporting (`Error: <message>` on stderr).

/// etcdctl's exit codes (`etcdctl/ctlv3/command/error.go`).
pub mod exit {
    pub const ERROR: i32 = 1;
    pub const BAD_CONNECTION: i32 = 2;
    pub const INVALID_INPUT: i32 = 3;
    pub const BAD_FEATURE: i32 = 4;
    pub const INTERRUPTED: i32 = 5;
    pub const BAD_ARGS: i32 = 128;
}

/// A failure that ends the command: what to print and the process exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// etcdctl's `ExitWithError(code, err)`: `Error: <message>` on stderr.
    Exit { code: i32, message: String },
    /// A flag that does not parse (pflag's message) for `command` ("" at the root).
    Flag {
        message: String,
        command: &'static str,
    },
    /// Output already written elsewhere; only the exit code remains.
    Silent { code: i32 },
    /// A message printed verbatim on stderr (several lines, or capnslog's format).
    Raw { stderr: String, code: i32 },
}

impl CliError {
    pub fn exit(code: i32, message: impl Into<String>) -> Self {
        CliError::Exit {
            code,
            message: message.into(),
        }
    }

    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::exit(exit::BAD_ARGS, message)
    }

    pub fn bad_feature(message: impl Into<String>) -> Self {
        Self::exit(exit::BAD_FEATURE, message)
    }

    /// The same failure with another exit code.
    pub fn with_code(self, code: i32) -> Self {
        match self {
            CliError::Exit { message, .. } => CliError::Exit { code, message },
            other => other,
        }
    }

    /// etcdctl's `fmt.Errorf("<what> (%v)", err)` around a client error.
    pub fn wrapped(self, what: &str) -> Self {
        match self {
            CliError::Exit { code, message } => CliError::Exit {
                code,
                message: format!("{what} ({message})"),
            },
            other => other,
        }
    }

    /// What to write to stderr, and the exit code.
    pub fn render(&self) -> (String, i32) {
        match self {
            CliError::Exit { code, message } => (format!("Error: {message}\n"), *code),
            CliError::Flag { message, command } => {
                let hint = if command.is_empty() {
                    "Run 'etcrctl --help' for the global flags.".to_string()
                } else {
                    format!("Run 'etcrctl {command} --help' for the flags of {command}.")
                };
                (format!("Error: {message}\n{hint}\n"), exit::ERROR)
            }
            CliError::Silent { code } => (String::new(), *code),
            CliError::Raw { stderr, code } => (stderr.clone(), *code),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
