//! `--compress`: the report folder's data files (every `*.jsonl` and
//! `*.csv`, and `findings.json`) as zstd frames, `NAME.zst`, each frame
//! with its content checksum. The page, `report.json`, the fix pages and
//! the manifest stay plain: a browser and `portwarden fix` read them as
//! they are. The manifest is written after, so it lists and signs the
//! files as written (`findings.jsonl.zst`, …), and `verify` checks every
//! `.zst` file decodes whole with its checksum besides its SHA-256.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::ReportError;

/// The suffix a compressed file gets.
pub const SUFFIX: &str = ".zst";

/// zstd's level: fast, and it shrinks repetitive CSV 10–30 times.
const LEVEL: i32 = 3;

/// Whether `--compress` compresses the top-level file `name`.
pub fn compressible(name: &str) -> bool {
    !name.contains('/')
        && (name.ends_with(".jsonl") || name.ends_with(".csv") || name == "findings.json")
}

/// Compresses every [`compressible`] regular file directly in `dir` (a
/// report folder being written: every file in it is ours) into
/// `NAME.zst` and removes `NAME`. A failure leaves no partial `.zst`.
pub fn compress_folder(dir: &Path) -> Result<(), ReportError> {
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|source| io(dir, source))? {
        let entry = entry.map_err(|source| io(dir, source))?;
        let is_file = entry
            .file_type()
            .map_err(|source| io(&entry.path(), source))?
            .is_file();
        if let Some(name) = entry.file_name().to_str()
            && is_file
            && compressible(name)
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    for name in names {
        let from = dir.join(&name);
        let to = dir.join(format!("{name}{SUFFIX}"));
        if let Err(e) = compress_file(&from, &to) {
            let _ = fs::remove_file(&to);
            return Err(e);
        }
        fs::remove_file(&from).map_err(|source| io(&from, source))?;
    }
    Ok(())
}

fn io(path: &Path, source: std::io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn compress_file(from: &Path, to: &Path) -> Result<(), ReportError> {
    let mut input = BufReader::new(File::open(from).map_err(|e| io(from, e))?);
    let out = BufWriter::new(File::create_new(to).map_err(|e| io(to, e))?);
    let mut enc = zstd::stream::write::Encoder::new(out, LEVEL).map_err(|e| io(to, e))?;
    enc.include_checksum(true).map_err(|e| io(to, e))?;
    std::io::copy(&mut input, &mut enc).map_err(|e| io(to, e))?;
    enc.finish()
        .map_err(|e| io(to, e))?
        .flush()
        .map_err(|e| io(to, e))
}

/// Whether the zstd file at `path` decodes whole, every frame's checksum
/// matching. Reads through the evidence layer's guarded open (a regular
/// file, never a link, FIFO or device); memory stays bounded.
pub fn decodes(path: &Path) -> Result<bool, ReportError> {
    let file = super::evidence::open_regular(path)?;
    let Ok(mut dec) = zstd::stream::read::Decoder::new(file) else {
        return Ok(false);
    };
    Ok(std::io::copy(&mut dec, &mut std::io::sink()).is_ok())
}

/// The data file `name` of the report folder `dir`, plain or, when only
/// `NAME.zst` is there, decompressed as it is read; `None` when neither is.
pub fn open_data(dir: &Path, name: &str) -> Result<Option<Box<dyn Read>>, ReportError> {
    let plain = dir.join(name);
    let packed = PathBuf::from(format!("{}{SUFFIX}", plain.display()));
    if fs::symlink_metadata(&plain).is_ok() {
        return Ok(Some(Box::new(super::evidence::open_regular(&plain)?)));
    }
    if fs::symlink_metadata(&packed).is_ok() {
        let file = super::evidence::open_regular(&packed)?;
        let dec = zstd::stream::read::Decoder::new(file).map_err(|e| io(&packed, e))?;
        return Ok(Some(Box::new(dec)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_are_compressed_and_read_back() {
        let dir = std::env::temp_dir().join(format!("pw-compress-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("fixes")).unwrap();
        let rows: String = (0..5000)
            .map(|i| format!("198.18.0.{},22\n", i % 250))
            .collect();
        fs::write(dir.join("findings.csv"), &rows).unwrap();
        fs::write(dir.join("findings.jsonl"), "{\"a\":1}\n").unwrap();
        fs::write(dir.join("index.html"), "<p>").unwrap();
        fs::write(dir.join("fixes/ufw.html"), "<p>").unwrap();
        compress_folder(&dir).unwrap();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "findings.csv.zst",
                "findings.jsonl.zst",
                "fixes",
                "index.html"
            ]
        );
        assert!(fs::metadata(dir.join("findings.csv.zst")).unwrap().len() < rows.len() as u64 / 10);
        let mut back = String::new();
        open_data(&dir, "findings.csv")
            .unwrap()
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, rows);
        assert!(decodes(&dir.join("findings.csv.zst")).unwrap());
        assert!(open_data(&dir, "inventory.csv").unwrap().is_none());
        // A flipped byte inside the frame fails its checksum or its decoding.
        let path = dir.join("findings.csv.zst");
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        fs::write(&path, bytes).unwrap();
        assert!(!decodes(&path).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}
