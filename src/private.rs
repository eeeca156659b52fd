//! Directories and files only this user can use: the schema cache and the tool pins hold what
//! servers list, which a model reads as instructions, so nobody else may write (or read) them.

use std::io::Write;
use std::path::Path;

/// Why a directory cannot be used.
pub struct DirProblem {
    /// Completes "the … dir X …": "cannot be used (…)", "is a symbolic link", ….
    pub why: String,
    /// It exists but is not ours alone: the user has to remove it (or choose another).
    pub not_private: bool,
}

/// Creates `dir` (0700, with its parents) or checks the one there is ours alone; one of ours
/// that only others can read (0755, as earlier versions made the cache) is closed.
pub fn make_dir(dir: &Path) -> Result<(), DirProblem> {
    let failed = |e: std::io::Error| DirProblem {
        why: format!("cannot be used ({e})"),
        not_private: false,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

        use crate::ipc::NotPrivate;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed)?;
        match crate::ipc::private_dir(dir) {
            Ok(()) => Ok(()),
            Err(NotPrivate::Open { mode }) if mode & 0o022 == 0 => {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(failed)
            }
            Err(problem) => Err(DirProblem {
                why: problem.to_string(),
                not_private: true,
            }),
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(failed)
}

/// Writes `bytes` to `path` (0600) through a temporary file and a rename: a crash mid-write
/// leaves the old file, never half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = private_file(&tmp).and_then(|mut file| file.write_all(bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

/// A file only the user can read (0600), created or truncated; a symbolic link there is not
/// followed.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}
