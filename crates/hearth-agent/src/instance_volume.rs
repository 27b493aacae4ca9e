//! The instance volume: a filesystem of the server's own holding everything instances see
//! of the host's disk (unpacked code, stem cells' folders, the language runtimes).
//!
//! A bind mount shows, in `/proc/self/mountinfo`, its source's path within the source's
//! filesystem. Were the code cache a folder of the data directory, every instance could read
//! where the server keeps its data (and the name of the user running it). On a filesystem
//! of its own, an instance reads `/cache/<digest>` and nothing of the host.
//!
//! The volume is an ext4 image in the data directory (sparse: it takes the disk its files
//! take), mounted through a loop device in the server's own mount namespace
//! ([`enter_private_mount_namespace`]): nobody else sees it, and it goes, with its loop
//! device, when the server and its instances are gone, even after a SIGKILL. Its contents
//! are a cache: an image that cannot be mounted is made again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("cannot make the server's own mount namespace: {0}")]
    Namespace(#[source] nix::Error),
    #[error("instance volume I/O failed at {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

/// Gives this process a mount namespace of its own, receiving the host's later mounts but
/// sending none back. Call it before any thread starts (the tokio runtime included):
/// `unshare(CLONE_NEWNS)` moves only the calling thread.
pub fn enter_private_mount_namespace() -> Result<(), VolumeError> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWNS).map_err(VolumeError::Namespace)?;
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_SLAVE | MsFlags::MS_REC, none).map_err(VolumeError::Namespace)
}

/// The mounted volume.
#[derive(Debug, Clone)]
pub struct InstanceVolume {
    root: PathBuf,
}

/// The image's file name in the data directory, and where it is mounted.
pub const IMAGE: &str = "volume.img";
pub const MOUNT_POINT: &str = "volume";

impl InstanceVolume {
    /// Mounts `<data_dir>/volume.img` at `<data_dir>/volume`, making the image (of `size_gb`,
    /// sparse) if there is none or if the one there cannot be mounted. A filesystem the
    /// operator mounted at `<data_dir>/volume` is used as it is. Call it after
    /// [`enter_private_mount_namespace`], or the mount is the host's.
    pub fn mount(data_dir: &Path, size_gb: u32) -> Result<Self, VolumeError> {
        let (image, root) = (data_dir.join(IMAGE), data_dir.join(MOUNT_POINT));
        create_dir(&root)?;
        if is_mount_point(&root)? {
            return Ok(Self { root });
        }
        if !image.exists() {
            make_image(&image, size_gb)?;
        } else if let Err(e) = mount_image(&image, &root) {
            tracing::warn!(%e, image = %image.display(), "cannot mount the instance volume; making it again (it holds only caches)");
            std::fs::remove_file(&image).map_err(io(&image))?;
            make_image(&image, size_gb)?;
        } else {
            return Ok(Self { root });
        }
        mount_image(&image, &root)?;
        Ok(Self { root })
    }

    /// Where the volume is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io { path: path.display().to_string(), source }
}

fn create_dir(path: &Path) -> Result<(), VolumeError> {
    std::fs::create_dir_all(path).map_err(io(path))
}

/// A folder is a mount point when it lives on another device than its parent.
fn is_mount_point(path: &Path) -> Result<bool, VolumeError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let (own, up) = (std::fs::metadata(path).map_err(io(path))?, std::fs::metadata(parent).map_err(io(parent))?);
    Ok(own.dev() != up.dev())
}

fn make_image(image: &Path, size_gb: u32) -> Result<(), VolumeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(image).map_err(io(image))?;
    file.set_len(u64::from(size_gb.max(1)) << 30).map_err(io(image))?;
    drop(file);
    // No reserved blocks (nobody logs in there); inode tables and journal zeroed lazily by
    // the kernel, so making a large image takes milliseconds.
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0", "-L", "hearth-volume", "-E", "lazy_itable_init=1,lazy_journal_init=1"])
        .arg(image))
}

fn mount_image(image: &Path, root: &Path) -> Result<(), VolumeError> {
    // `-o loop` attaches a loop device that detaches itself once unmounted (autoclear).
    run(Command::new("mount").args(["-t", "ext4", "-o", "loop,nosuid,nodev,noatime"]).arg(image).arg(root))
}

fn run(command: &mut Command) -> Result<(), VolumeError> {
    let shown = format!("{command:?}").replace('"', "");
    let out = command.output().map_err(|e| VolumeError::Command { command: shown.clone(), detail: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    let detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(VolumeError::Command { command: shown, detail: format!("{} ({detail})", out.status) })
}
