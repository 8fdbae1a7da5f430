//! Where the daemon logs: to the journal, natively (structured fields kept
//! as journal fields), when systemd connected its stderr to the journal;
//! else to stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber with `filter` (an `EnvFilter`, already
/// validated by the config; `info` if it does not parse).
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_the_journal() {
        match tracing_journald::layer() {
            Ok(journal) => {
                registry.with(journal.with_syslog_identifier("outpostd".to_string())).init();
                return;
            }
            Err(err) => eprintln!("outpostd: cannot log to the journal ({err}); logging to stderr"),
        }
    }
    registry
        .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr))
        .init();
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is
/// the journal; a child whose stderr was redirected elsewhere inherits the
/// variable, so the device and inode must match stderr's own.
fn stderr_is_the_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(fd).metadata() else { return false };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}
