//! `outpost backup FILE`: outpostd streams a snapshot of its store and this
//! writes the file, since the daemon's sandbox cannot reach an admin's
//! paths. The file appears under its name only once the daemon has said
//! the backup is complete; until then it is `FILE.partial`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use outpost_model::api::{Request, Response};

use crate::client::{Client, ClientError};
use crate::failure::Failure;
use crate::render::print_json;

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn local(file: &Path, what: &str, err: std::io::Error) -> Failure {
    Failure::Local { code: 1, message: format!("{what} {}: {err}", file.display()) }
}

/// Gives the complete backup its name. A link, not a rename, so that a
/// file made meanwhile is never replaced; where the file system has no
/// links (a FAT USB stick), a rename after one more look.
fn put_in_place(partial: &Path, file: &Path) -> Result<(), Failure> {
    match std::fs::hard_link(partial, file) {
        Ok(()) => std::fs::remove_file(partial).map_err(|e| local(partial, "cannot remove", e)),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(Failure::bad_input(format!(
            "{} appeared while the backup was written; the backup is kept as {}",
            file.display(),
            partial.display()
        ))),
        Err(_) if !file.exists() => std::fs::rename(partial, file).map_err(|e| local(file, "cannot create", e)),
        Err(err) => Err(local(file, "cannot create", err)),
    }
}

/// Writes a backup of the daemon's store to `file`, which must not exist.
pub fn run(client: &mut Client, file: &Path, json: bool) -> Result<(), Failure> {
    if file.exists() {
        return Err(Failure::bad_input(format!("{} exists; a backup never overwrites a file", file.display())));
    }
    let partial = partial_path(file);
    // Mode 0600: the backup holds every record and the audit log.
    let out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::bad_input(format!(
                "{} exists: an interrupted backup left it; remove it, or choose another FILE",
                partial.display()
            ))
        } else {
            local(&partial, "cannot create", e)
        }
    })?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, out);
    let written = client.call_streaming(Request::Backup, &mut writer).and_then(|reply| {
        let out = writer.into_inner().map_err(|e| ClientError::Output(e.into_error()))?;
        out.sync_all().map_err(ClientError::Output)?;
        Ok(reply)
    });
    let summary = match written {
        Ok(Response::BackupWritten(summary)) => summary,
        Ok(_) => {
            let _ = std::fs::remove_file(&partial);
            return Err(Failure::Local { code: 1, message: "outpostd answered the backup with something else".into() });
        }
        Err(ClientError::Output(err)) => {
            let _ = std::fs::remove_file(&partial);
            return Err(local(&partial, "cannot write", err));
        }
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err.into());
        }
    };
    put_in_place(&partial, file)?;
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| local(dir, "cannot sync", e))?;
    if json {
        print_json(&serde_json::json!({
            "file": file.display().to_string(),
            "tables": summary.tables,
            "rows": summary.rows,
            "bytes": summary.bytes,
            "sha256": summary.sha256,
        }));
    } else {
        println!(
            "backup written to {}: {} rows in {} tables, {} bytes, sha256 {}\nrestore it into an empty data directory with: outpostd --restore {}",
            file.display(),
            summary.rows,
            summary.tables,
            summary.bytes,
            summary.sha256,
            file.display()
        );
    }
    Ok(())
}
