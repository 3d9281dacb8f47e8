use std::path::Path;

use super::*;

fn source(dir: &Path) -> PathBuf {
    let from = dir.join("netboot");
    std::fs::create_dir_all(from.join("pxelinux.cfg")).unwrap();
    std::fs::write(from.join("linux"), b"kernel bytes").unwrap();
    std::fs::write(from.join("initrd.gz"), vec![7u8; 300_000]).unwrap();
    std::fs::write(from.join("pxelinux.cfg/default"), b"default install\n").unwrap();
    std::fs::write(from.join(".hidden"), b"left out").unwrap();
    from
}

#[test]
fn names() {
    assert!(valid_name("debian-12-amd64"));
    assert!(valid_name("clonezilla_3.1.2"));
    for bad in [
        "",
        "Debian",
        "-x",
        ".x",
        "a/b",
        "a b",
        "..",
        &"x".repeat(65),
    ] {
        assert!(!valid_name(bad), "{bad}");
    }
}

#[test]
fn an_import_copies_the_files_with_their_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let from = source(dir.path());
    let mut seen = Vec::new();
    let image = store
        .import_dir("debian-12-amd64", &from, false, |done, total| {
            seen.push((done, total))
        })
        .unwrap();
    let paths: Vec<&str> = image.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["initrd.gz", "linux", "pxelinux.cfg/default"]);
    assert_eq!(image.size, 300_000 + 12 + 16);
    let linux = &image.files[1];
    assert_eq!(linux.sha256, hex::encode(Sha256::digest(b"kernel bytes")));
    // Progress went up to the total.
    assert_eq!(seen.last(), Some(&(image.size, image.size)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(
        store.list().unwrap(),
        [ImageSummary {
            name: "debian-12-amd64".into(),
            size: image.size,
            files: 3
        }]
    );
    // Checksums come from the manifest, and are right.
    let again = store.inspect("debian-12-amd64").unwrap();
    assert_eq!(again, image);
    assert_eq!(
        sha256_of(&store.file("debian-12-amd64", "initrd.gz").unwrap()).unwrap(),
        image.files[0].sha256
    );

    // The name is taken, unless replacing.
    let err = store
        .import_dir("debian-12-amd64", &from, false, |_, _| {})
        .unwrap_err();
    assert!(matches!(err, ImagesError::Conflict(_)), "{err}");
    std::fs::write(from.join("linux"), b"a newer kernel").unwrap();
    let replaced = store
        .import_dir("debian-12-amd64", &from, true, |_, _| {})
        .unwrap();
    assert_eq!(replaced.files[1].size, 14);

    store.delete("debian-12-amd64").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.delete("debian-12-amd64"),
        Err(ImagesError::NotFound(_))
    ));
    // Nothing hidden left behind.
    assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 0);
}

#[test]
fn a_failed_import_leaves_no_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let from = source(dir.path());
    // The kernel changes while the initrd is copied (before the kernel):
    // the import fails, and leaves nothing.
    let kernel = from.join("linux");
    let mut changed = false;
    let err = store
        .import_dir("broken", &from, false, |_, _| {
            if !changed {
                changed = true;
                std::fs::write(&kernel, b"a different length").unwrap();
            }
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("changed while it was imported"),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(store.dir()).unwrap().count(),
        0,
        "no staging folder left"
    );

    // Starting makes no folder (a server on PostgreSQL writes nothing
    // under its data folder).
    let unused = ImageStore::new(dir.path().join("unused"));
    unused.prepare().unwrap();
    assert!(unused.list().unwrap().is_empty());
    assert!(!dir.path().join("unused").exists());

    // A staging folder from an import that died is removed at start.
    let stale = store.dir().join(".import-ghost-1-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("linux"), b"half").unwrap();
    store.prepare().unwrap();
    assert!(!stale.exists());
}

#[test]
fn only_files_inside_an_image_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let from = source(dir.path());
    store.import_dir("deb", &from, false, |_, _| {}).unwrap();
    std::fs::write(dir.path().join("secret"), b"not for nodes").unwrap();
    let image = store.dir().join("deb");
    std::os::unix::fs::symlink(dir.path().join("secret"), image.join("out")).unwrap();
    std::os::unix::fs::symlink(image.join("linux"), image.join("kernel")).unwrap();

    assert!(store.file("deb", "linux").is_some());
    assert!(store.file("deb", "pxelinux.cfg/default").is_some());
    assert!(
        store.file("deb", "kernel").is_some(),
        "a link inside the image"
    );
    for bad in [
        "../../secret",
        "../deb/linux",
        "/etc/passwd",
        "out",
        ".bootler-sha256",
        "pxelinux.cfg",
        "pxelinux.cfg/../linux",
        "missing",
        "",
    ] {
        assert!(store.file("deb", bad).is_none(), "{bad}");
    }
    assert!(store.file("../images/deb", "linux").is_none());
    assert!(store.file("DEB", "linux").is_none());
}
