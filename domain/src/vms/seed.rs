//! The cloud-init NoCloud seed: a small ISO 9660 image labelled `cidata`
//! with the files `meta-data` and `user-data`, written here without
//! outside tools.
//!
//! Plain ISO 9660 names are upper case and 8.3 (`USER_DAT.;1`), so the
//! image also carries a Joliet tree (what `genisoimage -joliet` adds) in
//! which the names are kept as they are. Linux reads the Joliet tree when
//! it mounts the image, and `blkid` (which cloud-init uses to find the
//! seed) reports the label `cidata`.
//!
//! Layout, in 2048-byte sectors: 0–15 empty (system area), 16 the primary
//! volume descriptor, 17 the Joliet supplementary one, 18 the terminator,
//! 19–22 the path tables (primary L and M, Joliet L and M), 23 the primary
//! root directory, 24 the Joliet root directory, then the files, each from
//! a sector of its own; both trees point at the same file data.

use chrono::{DateTime, Datelike, Timelike, Utc};

const SECTOR: usize = 2048;
const PVD: usize = 16;
const SVD: usize = 17;
const TERMINATOR: usize = 18;
const PATH_L: usize = 19;
const PATH_M: usize = 20;
const JOLIET_PATH_L: usize = 21;
const JOLIET_PATH_M: usize = 22;
const ROOT: usize = 23;
const JOLIET_ROOT: usize = 24;
const FIRST_FILE: usize = 25;
/// A path table with the root alone.
const PATH_TABLE_SIZE: u32 = 10;

/// The NoCloud seed with these two files, labelled `cidata`.
pub fn seed_iso(meta_data: &str, user_data: &str) -> Result<Vec<u8>, String> {
    iso9660(
        "cidata",
        &[
            ("meta-data", meta_data.as_bytes()),
            ("user-data", user_data.as_bytes()),
        ],
        Utc::now(),
    )
}

/// An ISO 9660 image (with Joliet) holding `files` in its root directory.
fn iso9660(
    volume_id: &str,
    files: &[(&str, &[u8])],
    now: DateTime<Utc>,
) -> Result<Vec<u8>, String> {
    if volume_id.is_empty() || volume_id.len() > 16 || !volume_id.is_ascii() {
        return Err(format!(
            "The volume label {volume_id:?} must be 1 to 16 ASCII characters."
        ));
    }
    // Where each file's data goes.
    let mut extents = Vec::with_capacity(files.len());
    let mut next = FIRST_FILE;
    for (name, data) in files {
        if name.is_empty() || name.chars().count() > 64 || name.contains(['/', '\0', ';']) {
            return Err(format!("{name:?} cannot be a file name in the seed image."));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(format!("{name} is too large for the seed image."));
        }
        extents.push(next);
        next += data.len().div_ceil(SECTOR);
    }
    let total_sectors = next;
    let total = u32::try_from(total_sectors).map_err(|_| "The seed image is too large.")?;

    let primary: Vec<(Vec<u8>, usize, usize)> = files
        .iter()
        .zip(&extents)
        .map(|((name, data), &extent)| (primary_name(name), extent, data.len()))
        .collect();
    let joliet: Vec<(Vec<u8>, usize, usize)> = files
        .iter()
        .zip(&extents)
        .map(|((name, data), &extent)| (ucs2(name), extent, data.len()))
        .collect();
    for (i, (name, ..)) in primary.iter().enumerate() {
        if primary[..i].iter().any(|(other, ..)| other == name) {
            return Err(format!(
                "Two files of the seed image would have the same ISO 9660 name {}.",
                String::from_utf8_lossy(name)
            ));
        }
    }

    let mut image = vec![0u8; total_sectors * SECTOR];
    let date = record_date(now);
    let stamp = descriptor_date(now);

    let root_record = |extent: usize| directory_record(&[0], extent, SECTOR, true, date);
    write_descriptor(
        sector_mut(&mut image, PVD),
        1,
        total,
        &padded(volume_id.as_bytes(), 32, b' '),
        &root_record(ROOT),
        (PATH_L, PATH_M),
        &stamp,
        false,
    );
    write_descriptor(
        sector_mut(&mut image, SVD),
        2,
        total,
        &padded_ucs2(volume_id, 32),
        &root_record(JOLIET_ROOT),
        (JOLIET_PATH_L, JOLIET_PATH_M),
        &stamp,
        true,
    );
    let terminator = sector_mut(&mut image, TERMINATOR);
    terminator[0] = 255;
    terminator[1..6].copy_from_slice(b"CD001");
    terminator[6] = 1;

    for (l, m, root) in [
        (PATH_L, PATH_M, ROOT),
        (JOLIET_PATH_L, JOLIET_PATH_M, JOLIET_ROOT),
    ] {
        let root = u32::try_from(root).unwrap_or_default();
        let table_l = sector_mut(&mut image, l);
        table_l[0] = 1;
        table_l[2..6].copy_from_slice(&root.to_le_bytes());
        table_l[6..8].copy_from_slice(&1u16.to_le_bytes());
        let table_m = sector_mut(&mut image, m);
        table_m[0] = 1;
        table_m[2..6].copy_from_slice(&root.to_be_bytes());
        table_m[6..8].copy_from_slice(&1u16.to_be_bytes());
    }

    for (sector, mut entries) in [(ROOT, primary), (JOLIET_ROOT, joliet)] {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut records = Vec::new();
        records.extend(directory_record(&[0], sector, SECTOR, true, date));
        records.extend(directory_record(&[1], sector, SECTOR, true, date));
        for (name, extent, len) in &entries {
            // An empty file has no data (and no extent).
            let extent = if *len == 0 { 0 } else { *extent };
            records.extend(directory_record(name, extent, *len, false, date));
        }
        if records.len() > SECTOR {
            return Err("Too many files for the seed image's directory.".into());
        }
        sector_mut(&mut image, sector)[..records.len()].copy_from_slice(&records);
    }

    for ((_, data), &extent) in files.iter().zip(&extents) {
        let start = extent * SECTOR;
        image[start..start + data.len()].copy_from_slice(data);
    }
    Ok(image)
}

fn sector_mut(image: &mut [u8], sector: usize) -> &mut [u8] {
    &mut image[sector * SECTOR..(sector + 1) * SECTOR]
}

/// A primary or Joliet (`joliet`) volume descriptor.
#[allow(clippy::too_many_arguments)]
fn write_descriptor(
    out: &mut [u8],
    kind: u8,
    total_sectors: u32,
    volume_id: &[u8],
    root_record: &[u8],
    (path_l, path_m): (usize, usize),
    stamp: &[u8; 17],
    joliet: bool,
) {
    let text = |len: usize, value: &str| {
        if joliet {
            padded_ucs2(value, len)
        } else {
            padded(value.as_bytes(), len, b' ')
        }
    };
    out[0] = kind;
    out[1..6].copy_from_slice(b"CD001");
    out[6] = 1;
    out[8..40].copy_from_slice(&text(32, "LINUX"));
    out[40..72].copy_from_slice(volume_id);
    out[80..88].copy_from_slice(&both32(total_sectors));
    if joliet {
        // UCS-2 level 3.
        out[88..91].copy_from_slice(b"%/E");
    }
    out[120..124].copy_from_slice(&both16(1));
    out[124..128].copy_from_slice(&both16(1));
    out[128..132].copy_from_slice(&both16(SECTOR as u16));
    out[132..140].copy_from_slice(&both32(PATH_TABLE_SIZE));
    let path_l = u32::try_from(path_l).unwrap_or_default();
    let path_m = u32::try_from(path_m).unwrap_or_default();
    out[140..144].copy_from_slice(&path_l.to_le_bytes());
    out[148..152].copy_from_slice(&path_m.to_be_bytes());
    out[156..190].copy_from_slice(root_record);
    out[190..318].copy_from_slice(&text(128, ""));
    out[318..446].copy_from_slice(&text(128, ""));
    out[446..574].copy_from_slice(&text(128, ""));
    out[574..702].copy_from_slice(&text(128, "BOOTLER"));
    for field in [702..739, 739..776, 776..813] {
        let len = field.len();
        out[field].copy_from_slice(&text(len, ""));
    }
    out[813..830].copy_from_slice(stamp);
    out[830..847].copy_from_slice(stamp);
    // Expiration and effective dates: not specified.
    out[847..863].copy_from_slice(b"0000000000000000");
    out[864..880].copy_from_slice(b"0000000000000000");
    out[881] = 1;
}

/// One directory record: `name` is `[0]` for `.`, `[1]` for `..`.
fn directory_record(name: &[u8], extent: usize, len: usize, dir: bool, date: [u8; 7]) -> Vec<u8> {
    let name_len = name.len();
    let mut size = 33 + name_len;
    if size % 2 == 1 {
        size += 1;
    }
    let mut record = vec![0u8; size];
    record[0] = u8::try_from(size).unwrap_or(u8::MAX);
    record[2..10].copy_from_slice(&both32(u32::try_from(extent).unwrap_or_default()));
    record[10..18].copy_from_slice(&both32(u32::try_from(len).unwrap_or_default()));
    record[18..25].copy_from_slice(&date);
    record[25] = if dir { 2 } else { 0 };
    record[28..32].copy_from_slice(&both16(1));
    record[32] = u8::try_from(name_len).unwrap_or(u8::MAX);
    record[33..33 + name_len].copy_from_slice(name);
    record
}

/// The 8.3 upper-case name (`user-data` → `USER_DAT.;1`), as
/// `genisoimage` makes it.
fn primary_name(name: &str) -> Vec<u8> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, ext),
        _ => (name, ""),
    };
    let map = |s: &str, max: usize| -> Vec<u8> {
        s.chars()
            .map(|c| match c.to_ascii_uppercase() {
                c @ ('A'..='Z' | '0'..='9' | '_') => c as u8,
                _ => b'_',
            })
            .take(max)
            .collect()
    };
    let mut out = map(stem, 8);
    out.push(b'.');
    out.extend(map(ext, 3));
    out.extend(b";1");
    out
}

fn ucs2(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn padded(value: &[u8], len: usize, pad: u8) -> Vec<u8> {
    let mut out: Vec<u8> = value.iter().copied().take(len).collect();
    out.resize(len, pad);
    out
}

/// UCS-2 big endian, padded with UCS-2 spaces (and a zero byte when `len`
/// is odd).
fn padded_ucs2(value: &str, len: usize) -> Vec<u8> {
    let mut out = ucs2(value);
    out.truncate(len - len % 2);
    while out.len() + 2 <= len {
        out.extend([0, b' ']);
    }
    out.resize(len, 0);
    out
}

fn both16(v: u16) -> [u8; 4] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], b[0], b[1]]
}

fn both32(v: u32) -> [u8; 8] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], l[2], l[3], b[0], b[1], b[2], b[3]]
}

/// A directory record's date: years since 1900, month, day, hour, minute,
/// second, offset from GMT.
fn record_date(t: DateTime<Utc>) -> [u8; 7] {
    let small = |v: u32| u8::try_from(v).unwrap_or_default();
    [
        u8::try_from(t.year() - 1900).unwrap_or_default(),
        small(t.month()),
        small(t.day()),
        small(t.hour()),
        small(t.minute()),
        small(t.second()),
        0,
    ]
}

/// A volume descriptor's date: `YYYYMMDDHHMMSScc` and the offset from GMT.
fn descriptor_date(t: DateTime<Utc>) -> [u8; 17] {
    let mut out = [0u8; 17];
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}00",
        t.year().clamp(0, 9999),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    out[..16].copy_from_slice(&text.as_bytes()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const META: &str = "instance-id: bootler-7-web\nlocal-hostname: web\n";
    const USER: &str = "#cloud-config\nhostname: web\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootler alice@laptop\"\n";

    fn isoinfo(image: &[u8], args: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.iso");
        std::fs::write(&path, image).unwrap();
        let out = Command::new("isoinfo")
            .args(args)
            .arg("-i")
            .arg(&path)
            .output()
            .expect("isoinfo (Debian package genisoimage) must be installed");
        assert!(out.status.success(), "isoinfo {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn names_and_layout() {
        assert_eq!(primary_name("user-data"), b"USER_DAT.;1");
        assert_eq!(primary_name("meta-data"), b"META_DAT.;1");
        assert_eq!(primary_name("network-config"), b"NETWORK_.;1");
        assert_eq!(primary_name("a.b.yaml"), b"A_B.YAM;1");
        let image = seed_iso(META, USER).unwrap();
        // Descriptors, path tables, two directories, one sector per file.
        assert_eq!(image.len(), 27 * SECTOR);
        assert_eq!(&image[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&image[16 * SECTOR + 40..16 * SECTOR + 46], b"cidata");
        assert_eq!(&image[17 * SECTOR + 88..17 * SECTOR + 91], b"%/E");
        assert_eq!(image[18 * SECTOR], 255);
    }

    #[test]
    fn rejects_what_it_cannot_hold() {
        assert!(iso9660("", &[], Utc::now()).is_err());
        assert!(iso9660("cidata", &[("a/b", b"x")], Utc::now()).is_err());
        assert!(
            iso9660(
                "cidata",
                &[("user-data", b"x"), ("USER-DATA", b"y")],
                Utc::now()
            )
            .is_err()
        );
    }

    #[test]
    fn isoinfo_reads_the_label_and_both_trees() {
        let image = seed_iso(META, USER).unwrap();
        let info = isoinfo(&image, &["-d"]);
        assert!(info.contains("Volume id: cidata"), "{info}");
        assert!(info.contains("Joliet with UCS level 3 found"), "{info}");
        assert!(info.contains("Volume size is: 27"), "{info}");

        let joliet = isoinfo(&image, &["-J", "-l"]);
        assert!(joliet.contains(&format!("{:>6} ", META.len())), "{joliet}");
        let names: Vec<&str> = joliet
            .lines()
            .filter_map(|l| l.split("]  ").nth(1))
            .map(str::trim)
            .collect();
        assert_eq!(names, [".", "..", "meta-data", "user-data"], "{joliet}");
        assert_eq!(isoinfo(&image, &["-J", "-x", "/user-data"]), USER);
        assert_eq!(isoinfo(&image, &["-J", "-x", "/meta-data"]), META);

        let primary = isoinfo(&image, &["-l"]);
        assert!(primary.contains("USER_DAT.;1"), "{primary}");
        assert_eq!(isoinfo(&image, &["-x", "/META_DAT.;1"]), META);
    }

    #[test]
    fn blkid_finds_the_cidata_label() {
        // cloud-init finds the seed with blkid (`LABEL=cidata`).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.iso");
        std::fs::write(&path, seed_iso(META, USER).unwrap()).unwrap();
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(&path)
            .output()
            .expect("blkid (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("LABEL=cidata"), "{text}");
        assert!(text.contains("TYPE=iso9660"), "{text}");
    }

    #[test]
    fn larger_and_empty_files_are_kept_whole() {
        let big = "x".repeat(5000) + "end\n";
        let image = iso9660(
            "cidata",
            &[("user-data", big.as_bytes()), ("vendor-data", b"")],
            Utc::now(),
        )
        .unwrap();
        // 25 sectors, then 3 for the large file and none for the empty one.
        assert_eq!(image.len(), 28 * SECTOR);
        assert_eq!(isoinfo(&image, &["-J", "-x", "/user-data"]), big);
        assert_eq!(isoinfo(&image, &["-J", "-x", "/vendor-data"]), "");
    }
}
