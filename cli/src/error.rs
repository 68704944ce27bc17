//! etcdctl's exit codes and error reporting (`Error: <message>` on stderr).

/// etcdctl's exit codes (`etcdctl/ctlv3/command/error.go`).
pub mod exit {
    pub const ERROR: i32 = 1;
    pub const INVALID_INPUT: i32 = 3;
    pub const BAD_FEATURE: i32 = 4;
    pub const BAD_ARGS: i32 = 128;
}

/// A failure that ends the command: what to print and the process exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// etcdctl's `ExitWithError(code, err)`: `Error: <message>` on stderr.
    Exit { code: i32, message: String },
    /// A flag parsing failure: cobra prints the error, the command's usage on stdout,
    /// then etcdctl prints the error again.
    Flag {
        message: String,
        usage: &'static str,
    },
    /// Output already written elsewhere; only the exit code remains.
    Silent { code: i32 },
    /// A message printed verbatim on stderr (cobra's and capnslog's own formats).
    Raw { stderr: String, code: i32 },
    /// A Go panic in etcdctl (e.g. an unknown comparison operator in a txn).
    Panic { message: String },
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

    /// What to write to (stdout, stderr) and the exit code.
    pub fn render(&self) -> (String, String, i32) {
        match self {
            CliError::Exit { code, message } => {
                (String::new(), format!("Error: {message}\n"), *code)
            }
            CliError::Flag { message, usage } => (
                usage.to_string(),
                format!("Error: {message}\n\nError: {message}\n"),
                exit::ERROR,
            ),
            CliError::Silent { code } => (String::new(), String::new(), *code),
            CliError::Raw { stderr, code } => (String::new(), stderr.clone(), *code),
            CliError::Panic { message } => (
                String::new(),
                format!("panic: {message}\n\ngoroutine 1 [running]:\n"),
                2,
            ),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
