//! How `import` and `connect` touch the user's files: bounded reads, new files created
//! exclusively with their mode from the start, and replacements that are atomic (a temporary
//! file in the same directory, synced, renamed over the original, keeping its mode), so a
//! crash or a full disk leaves the old file or the new one, never half of one.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest client config read (`~/.claude.json` keeps the history of every project, so
/// it can be large, but not this large).
pub const MAX_CLIENT_FILE: u64 = 64 << 20;

/// A file's text, if it is a regular file of at most `max` bytes of UTF-8. It is opened
/// without waiting (O_NONBLOCK) and checked through its handle: a FIFO where a client's file
/// or a project's `.env` should be (a cloned repository can hold one) would otherwise hang
/// the import on the open until a writer came.
pub fn read_text(path: &Path, max: u64) -> Result<String, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let regular = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .is_file();
    if !regular {
        return Err(format!("{}: not a regular file, not read", path.display()));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "{}: larger than {} MiB, not read",
            path.display(),
            max >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

/// The permission bits of `path`, if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// Creates `path` with `bytes` and `mode`; never replaces a file that exists.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let shown = path.display();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{shown}: cannot create it: {e}"))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{shown}: cannot write it: {e}"))?;
    // The umask may have taken bits away; never more than asked for.
    fs::set_permissions(
        path,
        fs::Permissions::from_mode(mode & mode_of(path).unwrap_or(mode)),
    )
    .map_err(|e| format!("{shown}: {e}"))
}

/// Replaces (or creates) `path` with `bytes` atomically, with `mode`. A symlink is written
/// through: its target is replaced, the link stays.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = (0..100)
        .map(|n| dir.join(format!(".{name}.mcpgw-{}-{n}", std::process::id())))
        .find(|candidate| !candidate.exists())
        .ok_or_else(|| format!("{}: no free temporary name beside it", target.display()))?;
    write_new(&tmp, bytes, mode)?;
    // write_new gave it `mode` less the umask: the original's mode is what it keeps.
    let kept = fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .and_then(|()| fs::rename(&tmp, &target));
    if let Err(e) = kept {
        let _ = fs::remove_file(&tmp);
        return Err(format!("{}: cannot replace it: {e}", target.display()));
    }
    Ok(())
}

/// Creates `<path>.<tag>-<time>` (`-2`, … when taken) with `bytes` and `mode`, never over
/// another file: a copy of a file's old bytes kept before it is replaced. Its path.
pub fn keep_copy(path: &Path, tag: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, String> {
    let stamp = timestamp();
    for n in 1..100 {
        let suffix = match n {
            1 => format!(".{tag}-{stamp}"),
            n => format!(".{tag}-{stamp}-{n}"),
        };
        let copy = beside(path, &suffix);
        if copy.exists() {
            continue;
        }
        write_new(&copy, bytes, mode)?;
        return Ok(copy);
    }
    Err(format!(
        "{}: no free name for a copy beside it",
        path.display()
    ))
}

/// `<path><suffix>`: a file beside `path`.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The time now as `YYYYMMDD-HHMMSS` (UTC), for backup names.
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_keep_the_mode_and_write_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        write_new(&path, b"one", 0o600).unwrap();
        assert_eq!(mode_of(&path), Some(0o600));
        assert!(write_new(&path, b"two", 0o600).is_err(), "never replaces");
        write_atomic(&path, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), Some(0o640));

        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        write_atomic(&link, b"three", 0o600).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&path).unwrap(), b"three");
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary file left");
    }

    #[test]
    fn bounded_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, "x".repeat(2 << 20)).unwrap();
        assert!(
            read_text(&path, 1 << 20)
                .unwrap_err()
                .contains("larger than 1 MiB")
        );
        assert_eq!(read_text(&path, 4 << 20).unwrap().len(), 2 << 20);

        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(read_text(&fifo, 1 << 20)).unwrap());
        let read = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a FIFO must not block the read");
        assert!(read.unwrap_err().contains("not a regular file"));
        assert!(read_text(dir.path(), 1 << 20).is_err());
    }

    #[test]
    fn timestamps_are_civil_dates() {
        let stamp = timestamp();
        assert_eq!(stamp.len(), 15, "{stamp}");
        assert!(stamp.starts_with("20"), "{stamp}");
    }
}
