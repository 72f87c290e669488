//! A fast parser for whitespace-separated float text (`features/<activity>/<video>.txt`).
//!
//! Contract: one row per non-blank line, every row the same number of values, each token a
//! decimal float (also `nan`/`inf`, which the caller then rejects or zeroes). Values are parsed as
//! f64 and rounded to f32, exactly as the reference does (`np.loadtxt` → float64, then `.float()`).
//! Blank lines are skipped, as `np.loadtxt` does. Errors name the file, the 1-based line and
//! column, and the token.
//!
//! Cost: one pass over the bytes. Files larger than [`PARALLEL_MIN_BYTES`] are split at line
//! boundaries and the pieces parsed on the rayon pool; the result is identical to the serial parse.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{DatasetError, Result};

/// Files at least this large are parsed in parallel pieces.
pub const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// A parsed matrix: row-major values and the row width.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMatrix {
    pub values: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

/// Why a piece failed, with a line number relative to the piece.
enum PieceError {
    Parse {
        line: usize,
        column: usize,
        token: String,
    },
    Ragged {
        line: usize,
        expected: usize,
        found: usize,
    },
}

struct Piece {
    values: Vec<f32>,
    rows: usize,
    /// Width of the first row of the piece (0 if the piece has no rows).
    cols: usize,
    /// Newlines in the piece, to turn relative line numbers into absolute ones.
    newlines: usize,
}

fn parse_piece(text: &str, expect_cols: Option<usize>) -> Result<Piece, PieceError> {
    let mut values = Vec::with_capacity(text.len() / 8);
    let mut rows = 0usize;
    let mut cols = expect_cols.unwrap_or(0);
    let mut newlines = 0usize;
    for line in text.split('\n') {
        newlines += 1;
        let before = values.len();
        for (c, token) in line.split_ascii_whitespace().enumerate() {
            match token.parse::<f64>() {
                Ok(v) => values.push(v as f32),
                Err(_) => {
                    return Err(PieceError::Parse {
                        line: newlines,
                        column: c + 1,
                        token: token.to_string(),
                    });
                }
            }
        }
        let found = values.len() - before;
        if found == 0 {
            continue;
        }
        if rows == 0 && expect_cols.is_none() {
            cols = found;
        } else if found != cols {
            return Err(PieceError::Ragged {
                line: newlines,
                expected: cols,
                found,
            });
        }
        rows += 1;
    }
    Ok(Piece {
        values,
        rows,
        cols,
        newlines: newlines.saturating_sub(1),
    })
}

/// Parses `bytes` (the content of `path`).
pub fn parse_text_matrix(bytes: &[u8], path: &Path) -> Result<TextMatrix> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DatasetError::Parse {
            path: path.to_path_buf(),
            line,
            column: 0,
            token: "<bytes that are not UTF-8 text>".into(),
        }
    })?;
    let n = if bytes.len() >= PARALLEL_MIN_BYTES {
        rayon::current_num_threads() * 4
    } else {
        1
    };
    let pieces = split_lines(text, n);
    // The first non-empty row decides the width: parse the first piece alone to learn it. If that
    // piece holds no row at all (only blank lines), parse the whole text serially instead.
    let first = parse_piece(pieces[0], None).map_err(|e| lift(e, 0, path))?;
    if first.cols == 0 && pieces.len() > 1 {
        let all = parse_piece(text, None).map_err(|e| lift(e, 0, path))?;
        return Ok(TextMatrix {
            values: all.values,
            rows: all.rows,
            cols: all.cols,
        });
    }
    let cols = first.cols;
    let rest: Vec<_> = pieces[1..]
        .par_iter()
        .map(|p| parse_piece(p, Some(cols)))
        .collect();
    let total: usize = rest
        .iter()
        .map(|r| r.as_ref().map_or(0, |p| p.values.len()))
        .sum();
    let mut values = first.values;
    values.reserve_exact(total);
    let mut rows = first.rows;
    let mut line_base = first.newlines;
    for result in rest {
        let piece = result.map_err(|e| lift(e, line_base, path))?;
        line_base += piece.newlines;
        rows += piece.rows;
        values.extend_from_slice(&piece.values);
    }
    Ok(TextMatrix { values, rows, cols })
}

fn lift(e: PieceError, line_base: usize, path: &Path) -> DatasetError {
    match e {
        PieceError::Parse {
            line,
            column,
            token,
        } => DatasetError::Parse {
            path: path.to_path_buf(),
            line: line_base + line,
            column,
            token,
        },
        PieceError::Ragged {
            line,
            expected,
            found,
        } => DatasetError::Ragged {
            path: path.to_path_buf(),
            line: line_base + line,
            expected,
            found,
        },
    }
}

/// Splits `text` into at most `n` pieces that end at line boundaries (each piece but the last
/// ends just after a `\n`).
fn split_lines(text: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let bytes = text.as_bytes();
    let target = bytes.len() / n + 1;
    let mut pieces = Vec::with_capacity(n);
    let mut start = 0;
    while start < bytes.len() && pieces.len() + 1 < n {
        let probe = (start + target).min(bytes.len());
        match bytes[probe..].iter().position(|&b| b == b'\n') {
            Some(off) => {
                let end = probe + off + 1;
                pieces.push(&text[start..end]);
                start = end;
            }
            None => break,
        }
    }
    pieces.push(&text[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TextMatrix> {
        parse_text_matrix(s.as_bytes(), Path::new("f.txt"))
    }

    #[test]
    fn parses_rows_crlf_blank_lines_and_exponents() {
        let m = parse("1 2.5e0\r\n\n  -3.0e-1\t4 \n").expect("ok");
        assert_eq!((m.rows, m.cols), (2, 2));
        assert_eq!(m.values, vec![1.0, 2.5, -0.3, 4.0]);
        let empty = parse("\n\n").expect("ok");
        assert_eq!((empty.rows, empty.cols), (0, 0));
    }

    #[test]
    fn rounds_through_f64_like_the_reference() {
        // a decimal where direct f32 parsing and f64-then-f32 rounding differ
        let s = "1.00000005960464477539062500000000001";
        let m = parse(s).expect("ok");
        assert_eq!(m.values[0], s.parse::<f64>().expect("f64") as f32);
    }

    #[test]
    fn errors_name_line_column_token() {
        let e = parse("1 2\n3 x\n").unwrap_err().to_string();
        assert!(
            e.contains("f.txt:2") && e.contains("column 2") && e.contains("`x`"),
            "{e}"
        );
        let e = parse("1 2\n\n3 4 5\n").unwrap_err().to_string();
        assert!(
            e.contains("f.txt:3") && e.contains("3 values, expected 2"),
            "{e}"
        );
        let e = parse_text_matrix(b"1 2\n\xff\xfe\n", Path::new("f.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.txt:2") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn parallel_pieces_equal_serial_parse_and_keep_line_numbers() {
        let mut s = String::new();
        for r in 0..40_000 {
            for c in 0..8 {
                s.push_str(&format!("{:e} ", (r * 8 + c) as f64 * 0.37 - 11.0));
            }
            s.push('\n');
        }
        assert!(s.len() >= PARALLEL_MIN_BYTES);
        let m = parse(&s).expect("ok");
        assert_eq!((m.rows, m.cols), (40_000, 8));
        let serial = parse_piece(&s, None).ok().expect("serial");
        assert_eq!(m.values, serial.values);
        for pieces in [2, 3, 7, 64] {
            let joined: String = split_lines(&s, pieces).concat();
            assert_eq!(joined, s);
        }
        let mut bad = s.clone();
        bad.push_str("1 2 3\n");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("f.txt:40001"), "{e}");
        let mut bad = s;
        let at = bad.len() / 2;
        let line = bad[..at].matches('\n').count() + 1;
        let nl = bad[at..].find('\n').expect("nl") + at + 1;
        bad.insert_str(nl, "oops 1 2 3 4 5 6 7\n");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!("f.txt:{}", line + 1)) && e.contains("`oops`"),
            "{e}"
        );
    }
}
