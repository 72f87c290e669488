//! `.npy` feature matrices through the `npyz` crate: float32 or float64, little or big endian,
//! C or Fortran order, shape (N, D). Values are rounded to f32 (what the model consumes).

use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::error::{DatasetError, Result};
use crate::txt::TextMatrix;

/// Reads an N×D float matrix from `.npy` bytes (the content of `path`).
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<TextMatrix> {
    let bad = |message: String| DatasetError::Npy {
        path: path.to_path_buf(),
        message,
    };
    // npyz multiplies the declared shape without overflow checks: refuse absurd shapes first
    if let Some(shape) = declared_shape(bytes) {
        let total = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if total.is_none_or(|t| t > bytes.len() as u64) {
            return Err(bad(format!(
                "data ends early or is unreadable (declared shape {shape:?} needs more than the {} bytes in the file)",
                bytes.len()
            )));
        }
    }
    let file = NpyFile::new(bytes).map_err(|e| bad(format!("bad header ({e})")))?;
    let shape = file.shape().to_vec();
    let (rows, cols) = match shape[..] {
        [r, c] => (r as usize, c as usize),
        _ => {
            return Err(bad(format!(
                "shape {shape:?}, expected 2 dimensions (frames, features)"
            )));
        }
    };
    let order = file.order();
    let width = match file.dtype() {
        DType::Plain(ts) if ts.type_char() == TypeChar::Float => ts.size_field() as usize,
        other => {
            return Err(bad(format!(
                "dtype {}, expected float32 or float64",
                other.descr()
            )));
        }
    };
    // Check the declared size against the bytes present before allocating anything: a corrupt
    // header must not turn into a huge allocation.
    let need = rows.checked_mul(cols).and_then(|n| n.checked_mul(width));
    match need {
        Some(n) if n <= bytes.len() => {}
        _ => {
            return Err(bad(format!(
                "data ends early or is unreadable (shape ({rows}, {cols}) of {width}-byte floats needs more than the {} bytes in the file)",
                bytes.len()
            )));
        }
    }
    let truncated = |e: std::io::Error| bad(format!("data ends early or is unreadable ({e})"));
    let flat: Vec<f32> = match width {
        4 => file.into_vec::<f32>().map_err(truncated)?,
        8 => file
            .into_vec::<f64>()
            .map_err(truncated)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        w => {
            return Err(bad(format!(
                "{}-byte floats, expected float32 or float64",
                w
            )));
        }
    };
    if flat.len() != rows.saturating_mul(cols) {
        return Err(bad(format!(
            "{} values for shape ({rows}, {cols})",
            flat.len()
        )));
    }
    let values = match order {
        Order::C => flat,
        Order::Fortran => {
            // column-major → row-major
            let mut out = vec![0f32; flat.len()];
            for c in 0..cols {
                for r in 0..rows {
                    out[r * cols + c] = flat[c * rows + r];
                }
            }
            out
        }
    };
    Ok(TextMatrix { values, rows, cols })
}

/// Encodes a 2-D `.npy` file (format version 1.0) with dtype `descr` (e.g. `<f4`, `>f8`) and
/// the raw `data` bytes in that dtype.
pub fn encode_npy(descr: &str, fortran: bool, shape: (usize, usize), data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({}, {}), }}",
        if fortran { "True" } else { "False" },
        shape.0,
        shape.1
    );
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

/// Writes a row-major `rows`×`cols` float32 matrix as a little-endian C-order `.npy` file,
/// atomically.
pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, values: &[f32]) -> Result<()> {
    if values.len() != rows * cols {
        return Err(DatasetError::Invalid {
            what: path.display().to_string(),
            message: format!("{} values for a {rows}×{cols} matrix", values.len()),
        });
    }
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    crate::fsio::write_bytes_atomic(path, &encode_npy("<f4", false, (rows, cols), &data))
}

/// The `shape` tuple of an `.npy` header, if the header can be found and read.
fn declared_shape(bytes: &[u8]) -> Option<Vec<u64>> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return None;
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return None,
    };
    let header = std::str::from_utf8(bytes.get(start..start.checked_add(len)?)?).ok()?;
    let after = &header[header.find("'shape'")? + 7..];
    let open = after.find('(')?;
    let close = after.find(')')?;
    after
        .get(open + 1..close)?
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::encode_npy as npy_bytes;

    #[test]
    fn reads_f32_f64_c_and_fortran_and_big_endian() {
        let vals = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let le32: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = parse_npy(&npy_bytes("<f4", false, (2, 3), &le32), Path::new("a.npy")).expect("f4");
        assert_eq!((m.rows, m.cols, m.values.clone()), (2, 3, vals.to_vec()));
        // Fortran order: the same bytes are column-major, so row 0 is 1, 3, 5
        let f = parse_npy(&npy_bytes("<f4", true, (2, 3), &le32), Path::new("a.npy")).expect("F");
        assert_eq!(f.values, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        let be64: Vec<u8> = vals
            .iter()
            .flat_map(|v| (*v as f64).to_be_bytes())
            .collect();
        let m = parse_npy(&npy_bytes(">f8", false, (3, 2), &be64), Path::new("a.npy")).expect("f8");
        assert_eq!((m.rows, m.cols, m.values), (3, 2, vals.to_vec()));
    }

    #[test]
    fn rejects_truncated_wrong_dtype_and_shape() {
        let le32: Vec<u8> = [1.0f32, 2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let dir = std::env::temp_dir().join(format!("clot-npy-{}", std::process::id()));
        let path = dir.join("w.npy");
        write_npy_f32(&path, 1, 3, &[1.0, 2.0, 3.0]).expect("write");
        let back = parse_npy(&std::fs::read(&path).expect("read"), &path).expect("parse");
        assert_eq!(
            (back.rows, back.cols, back.values),
            (1, 3, vec![1.0, 2.0, 3.0])
        );
        assert!(write_npy_f32(&path, 2, 2, &[1.0]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        let e = parse_npy(&npy_bytes("<f4", false, (2, 3), &le32), Path::new("t.npy")).unwrap_err();
        assert!(
            e.to_string().contains("t.npy") && e.to_string().contains("ends early"),
            "{e}"
        );
        let e = parse_npy(&npy_bytes("<i4", false, (1, 3), &le32), Path::new("t.npy")).unwrap_err();
        assert!(e.to_string().contains("float32 or float64"), "{e}");
        let e = parse_npy(b"not an npy file at all", Path::new("t.npy")).unwrap_err();
        assert!(e.to_string().contains("bad header"), "{e}");
        let e = parse_npy(
            &npy_bytes("<f4", false, (1, 3), &le32)[..20],
            Path::new("t.npy"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("t.npy"), "{e}");
        // a corrupt header claiming an enormous shape fails before allocating
        let e = parse_npy(
            &npy_bytes("<f8", false, (1 << 40, 1 << 30), &le32),
            Path::new("t.npy"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ends early"), "{e}");
    }
}
