//! The boot image store (thesis listing A.4 boots
//! `${base-url}/images/xenial-64/linux`): a folder of named images, each a
//! folder of files (an installer's kernel and initrd, Clonezilla's
//! `vmlinuz`, `initrd.img` and `filesystem.squashfs`, anything an
//! administrator adds), served at `/images/{name}/{file}` so a lab's nodes
//! install without reaching the internet in early boot.
//!
//! Imports are atomic: files are copied (and their SHA-256 computed) into
//! a hidden folder next to the images, which is renamed to the image's
//! name only when everything arrived. An interrupted import leaves no
//! image, and the hidden folder is removed at the next start.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The checksums of an image's files, written at import.
const MANIFEST: &str = ".bootler-sha256";
/// Hidden folders of imports in progress.
const IMPORTING: &str = ".import-";

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// The files could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// One file of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageFile {
    /// Its path inside the image (`linux`, `live/filesystem.squashfs`).
    pub path: String,
    pub size: u64,
    /// Hex SHA-256, from the import's manifest (or computed).
    pub sha256: String,
}

/// An image and its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub name: String,
    pub size: u64,
    pub files: Vec<ImageFile>,
}

/// An image in a list: its name, size and file count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    pub name: String,
    pub size: u64,
    pub files: usize,
}

/// Whether `name` can name an image: 1–64 lower-case letters, digits, `.`,
/// `_` or `-`, starting with a letter or digit (`debian-12-amd64`).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn check_name(name: &str) -> Result<(), ImagesError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ImagesError::Invalid(format!(
            "“{name}” cannot name an image: use 1–64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit (debian-12-amd64)."
        )))
    }
}

fn io(what: &str, path: &Path, err: std::io::Error) -> ImagesError {
    ImagesError::Io(format!("{what} {}: {err}", path.display()))
}

/// The store: one folder.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    pub fn new(dir: impl Into<PathBuf>) -> ImageStore {
        ImageStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes what interrupted imports left. The folder itself is made
    /// by the first import (a server on PostgreSQL writes nothing under
    /// its data folder until then).
    pub fn prepare(&self) -> Result<(), ImagesError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io("cannot read", &self.dir, err)),
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(IMPORTING) {
                let path = entry.path();
                tracing::warn!(folder = %path.display(), "removing what an interrupted image import left");
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }

    /// Every image, by name.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImagesError> {
        let mut images = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(images),
            Err(err) => return Err(io("cannot read", &self.dir, err)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !valid_name(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let files = walk(&entry.path())?;
            images.push(ImageSummary {
                size: files.iter().map(|(_, size)| size).sum(),
                files: files.len(),
                name,
            });
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// One image with its files and their checksums.
    pub fn inspect(&self, name: &str) -> Result<Image, ImagesError> {
        check_name(name)?;
        let root = self.dir.join(name);
        if !root.is_dir() {
            return Err(ImagesError::NotFound(format!(
                "There is no image “{name}”."
            )));
        }
        let manifest = read_manifest(&root);
        let mut files = Vec::new();
        for (path, size) in walk(&root)? {
            let sha256 = match manifest.iter().find(|(p, _)| *p == path) {
                Some((_, sum)) => sum.clone(),
                None => sha256_of(&root.join(&path))?,
            };
            files.push(ImageFile { path, size, sha256 });
        }
        Ok(Image {
            name: name.to_string(),
            size: files.iter().map(|f| f.size).sum(),
            files,
        })
    }

    /// Removes an image.
    pub fn delete(&self, name: &str) -> Result<(), ImagesError> {
        check_name(name)?;
        let root = self.dir.join(name);
        if !root.is_dir() {
            return Err(ImagesError::NotFound(format!(
                "There is no image “{name}”."
            )));
        }
        // Out of sight at once (a rename), then removed.
        let gone = self
            .dir
            .join(format!("{IMPORTING}deleted-{name}-{}", std::process::id()));
        std::fs::rename(&root, &gone).map_err(|e| io("cannot remove", &root, e))?;
        std::fs::remove_dir_all(&gone).map_err(|e| io("cannot remove", &gone, e))?;
        tracing::info!(image = name, "image deleted");
        Ok(())
    }

    /// The file `file` of image `name`, for serving: `None` for anything
    /// that is not a regular file inside the image (`..`, hidden files,
    /// symbolic links that lead out of the store).
    pub fn file(&self, name: &str, file: &str) -> Option<PathBuf> {
        if !valid_name(name) || file.is_empty() || file.len() > 1024 {
            return None;
        }
        let relative = Path::new(file);
        let plain = relative.components().all(|c| match c {
            Component::Normal(part) => !part.to_string_lossy().starts_with('.'),
            _ => false,
        });
        if !plain {
            return None;
        }
        let root = self.dir.join(name).canonicalize().ok()?;
        let path = root.join(relative).canonicalize().ok()?;
        (path.starts_with(&root) && path.is_file()).then_some(path)
    }

    /// Imports the files under `from` (a folder) as image `name`;
    /// `progress(done, total)` in bytes. With `replace`, an image of that
    /// name is replaced (atomically) once the new one is complete.
    pub fn import_dir(
        &self,
        name: &str,
        from: &Path,
        replace: bool,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Image, ImagesError> {
        check_name(name)?;
        if !from.is_dir() {
            return Err(ImagesError::Invalid(format!(
                "{} is not a folder to import from.",
                from.display()
            )));
        }
        let target = self.dir.join(name);
        if target.exists() && !replace {
            return Err(ImagesError::Conflict(format!(
                "There is already an image “{name}”; delete it first, or import with --replace."
            )));
        }
        let files = walk(from)?;
        if files.is_empty() {
            return Err(ImagesError::Invalid(format!(
                "{} has no files to import.",
                from.display()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io("cannot create", &self.dir, e))?;
        self.prepare()?;
        let total: u64 = files.iter().map(|(_, size)| size).sum();
        let staging = Staging::new(&self.dir, name)?;
        let mut done = 0;
        let mut manifest = Vec::new();
        for (path, size) in &files {
            let to = staging.path.join(path);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("cannot create", parent, e))?;
            }
            let (sum, copied) = copy_hashing(&from.join(path), &to, |n| {
                done += n;
                progress(done, total);
            })?;
            if copied != *size {
                return Err(ImagesError::Io(format!(
                    "{} changed while it was imported ({size} bytes, then {copied}); nothing was imported, try again.",
                    from.join(path).display()
                )));
            }
            manifest.push((path.clone(), sum));
        }
        staging.finish(&target, &manifest, replace)?;
        tracing::info!(
            image = name,
            files = files.len(),
            bytes = total,
            "image imported"
        );
        self.inspect(name)
    }
}

/// A hidden folder an import fills; removed unless finished.
struct Staging {
    path: PathBuf,
    done: bool,
}

impl Staging {
    fn new(dir: &Path, name: &str) -> Result<Staging, ImagesError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            "{IMPORTING}{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).map_err(|e| io("cannot create", &path, e))?;
        Ok(Staging { path, done: false })
    }

    fn finish(
        mut self,
        target: &Path,
        manifest: &[(String, String)],
        replace: bool,
    ) -> Result<(), ImagesError> {
        let text: String = manifest
            .iter()
            .map(|(path, sum)| format!("{sum}  {path}\n"))
            .collect();
        let file = self.path.join(MANIFEST);
        std::fs::write(&file, text).map_err(|e| io("cannot write", &file, e))?;
        if target.exists() && replace {
            let old = self.path.with_extension("old");
            std::fs::rename(target, &old).map_err(|e| io("cannot replace", target, e))?;
            std::fs::rename(&self.path, target).map_err(|e| io("cannot create", target, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            // Fails if another import took the name meanwhile.
            std::fs::rename(&self.path, target).map_err(|e| io("cannot create", target, e))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Regular files under `root` (following no links out of it), as paths
/// relative to it with `/`, and their sizes; hidden files left out.
fn walk(root: &Path) -> Result<Vec<(String, u64)>, ImagesError> {
    let mut files = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(relative) = folders.pop() {
        let folder = root.join(&relative);
        let entries = std::fs::read_dir(&folder).map_err(|e| io("cannot read", &folder, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let path = relative.join(&name);
            // Links are followed (a package's files may be links), but
            // only to files and folders; what they point to is copied.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                if folders.len() + files.len() > 10_000 {
                    return Err(ImagesError::Invalid(format!(
                        "{} has more than 10,000 entries; import a smaller folder.",
                        root.display()
                    )));
                }
                folders.push(path);
            } else if meta.is_file() {
                files.push((path.to_string_lossy().replace('\\', "/"), meta.len()));
            }
        }
    }
    files.sort();
    Ok(files)
}

fn read_manifest(root: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(root.join(MANIFEST))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (sum, path) = line.split_once("  ")?;
            Some((path.to_string(), sum.to_string()))
        })
        .collect()
}

fn sha256_of(path: &Path) -> Result<String, ImagesError> {
    let mut file = std::fs::File::open(path).map_err(|e| io("cannot read", path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copies `from` to `to`; its SHA-256 and length.
fn copy_hashing(
    from: &Path,
    to: &Path,
    mut copied: impl FnMut(u64),
) -> Result<(String, u64), ImagesError> {
    use std::io::Write;
    let mut input = std::fs::File::open(from).map_err(|e| io("cannot read", from, e))?;
    let mut output = std::fs::File::create(to).map_err(|e| io("cannot write", to, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut length = 0;
    loop {
        let n = input
            .read(&mut buffer)
            .map_err(|e| io("cannot read", from, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output
            .write_all(&buffer[..n])
            .map_err(|e| io("cannot write", to, e))?;
        length += n as u64;
        copied(n as u64);
    }
    output.sync_all().map_err(|e| io("cannot write", to, e))?;
    Ok((hex::encode(hasher.finalize()), length))
}

#[cfg(test)]
mod tests;
