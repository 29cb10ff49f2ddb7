//! Directories and files only this process's user may read: the spool and the dead-letter
//! files hold every event's account and time.
//!
//! Directories are created `0700` and files `0600`. A directory is refused when it is a
//! symbolic link, is owned by another user, or can be written by its group or by others (a
//! user who can write there can plant a segment that is then replayed as events). Files
//! are opened without following a symbolic link, and anything that is not a regular file is
//! refused, so that a link to `/dev/zero` or a FIFO neither fills memory nor blocks the
//! writer.

use std::{
    fs::{self, File},
    io,
    path::Path,
};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};

/// Creates `dir` and its missing parents (`0700`), then checks it with [`check_dir`].
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)?;
    check_dir(dir)
}

/// Refuses a directory that is a symbolic link, is not a directory, can be written by its
/// group or others, or is owned by another user than the one this process runs as.
pub(crate) fn check_dir(dir: &Path) -> io::Result<()> {
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("directory {}: {why}", dir.display()),
        ))
    };
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link; give the directory itself".into());
    }
    if !meta.is_dir() {
        return refuse("is not a directory".into());
    }
    #[cfg(unix)]
    {
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return refuse(format!(
                "can be written by its group or by others (mode {mode:04o}); \
                 make it private (chmod 700)"
            ));
        }
        // Who this process is: the owner of a file it creates. std has no geteuid, and
        // the crate has no unsafe code.
        let probe = dir.join(format!(".owner-{}", uuid::Uuid::new_v4().simple()));
        let me = {
            let file = create_new(&probe)?;
            let uid = file.metadata().map(|m| m.uid());
            let _ = fs::remove_file(&probe);
            uid?
        };
        if meta.uid() != me {
            return refuse(format!(
                "is owned by user {} and this process runs as user {me}; \
                 use a directory of this user's own",
                meta.uid()
            ));
        }
    }
    Ok(())
}

/// Creates a new file (`0600`), failing if anything, a symbolic link included, is there.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    let mut options = File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)
}

/// Opens (creating, `0600`) a file to write, without following a symbolic link.
pub(crate) fn open_or_create(path: &Path) -> io::Result<File> {
    let mut options = File::options();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    let file = options.open(path)?;
    regular(&file, path)?;
    Ok(file)
}

/// Opens a file to read, without following a symbolic link nor waiting on a FIFO, and
/// refuses it unless it is a regular file of at most `max_len` bytes.
pub(crate) fn open_to_read(path: &Path, max_len: u64) -> io::Result<File> {
    let mut options = File::options();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = options.open(path)?;
    let len = regular(&file, path)?;
    if len > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes long; no segment is longer than {max_len}",
                path.display()
            ),
        ));
    }
    Ok(file)
}

/// The length of `file`, or an error if it is not a regular file.
fn regular(file: &File, path: &Path) -> io::Result<u64> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(meta.len())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("idp-private-{name}-{}", uuid::Uuid::new_v4()));
        create_dir(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_private() {
        let dir = temp("modes").join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(dir.parent().unwrap()), 0o700);
        create_new(&dir.join("f")).unwrap();
        assert_eq!(mode(&dir.join("f")), 0o600);
        open_or_create(&dir.join("lock")).unwrap();
        assert_eq!(mode(&dir.join("lock")), 0o600);
        // Only the owner's probe was made, and removed.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn links_fifos_devices_and_long_files_are_refused() {
        let dir = temp("refuse");
        let outside = temp("outside");
        symlink("/dev/zero", dir.join("zero")).unwrap();
        let err = open_to_read(&dir.join("zero"), 1 << 20).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        // A lock file linked elsewhere creates nothing there.
        symlink(outside.join("planted"), dir.join("lock")).unwrap();
        assert!(open_or_create(&dir.join("lock")).is_err());
        assert!(!outside.join("planted").exists());
        // A FIFO: refused at once, not waited on.
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let err = open_to_read(&fifo, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        // Longer than a segment can be.
        fs::write(dir.join("long"), vec![0u8; 4096]).unwrap();
        let err = open_to_read(&dir.join("long"), 4095).unwrap_err();
        assert!(err.to_string().contains("4096 bytes"), "{err}");
        assert!(open_to_read(&dir.join("long"), 4096).is_ok());
    }

    #[test]
    fn directories_others_can_write_or_links_are_refused() {
        let dir = temp("open");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_dir(&dir).unwrap_err();
        assert!(
            err.to_string().contains("group or by others (mode 0777)"),
            "{err}"
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        check_dir(&dir).unwrap();
        let link = dir.with_extension("link");
        symlink(&dir, &link).unwrap();
        let err = create_dir(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
