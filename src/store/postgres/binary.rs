//! Rows as `COPY (...) TO STDOUT (FORMAT binary)` sends them, read in
//! place: the full load at start reads the whole database this way.
//!
//! sqlx has no decoder for this format (it hands the COPY over as raw
//! bytes), and a query's rows cost far more to take apart: every row a
//! `PgRow` of its own, every column looked up by name and type-checked. The
//! format ("Binary Format" under `COPY` in PostgreSQL's manual) is small: a
//! header once, then per row a 16-bit field count and per field a 32-bit
//! length (-1: NULL) and that many bytes, each value in its type's binary
//! form (`bigint`: 8 bytes big-endian; `text`: UTF-8, the connection's
//! encoding; `bytea`: the bytes); a field count of -1 ends the data.

use crate::store::StoreError;

/// What every binary COPY starts with.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("loading grants: {what} in the COPY data"))
}

/// `data` (the first bytes of a COPY) past its header.
pub(super) fn past_header(data: &[u8]) -> Result<&[u8], StoreError> {
    let rest = data
        .strip_prefix(SIGNATURE)
        .ok_or_else(|| corrupt("no binary COPY signature"))?;
    let mut cursor = Cursor(rest);
    let flags = cursor.u32()?;
    // Bit 16: every row carries an OID first; the others are reserved.
    if flags != 0 {
        return Err(corrupt("unexpected header flags"));
    }
    let extension = cursor.u32()? as usize;
    cursor.take(extension)?;
    Ok(cursor.0)
}

/// A read position in COPY data (rows, or fields of a row).
pub(super) struct Cursor<'a>(pub(super) &'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("a value cut short"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes(bytes.try_into().expect("4 bytes")))
    }

    /// The start of the next row: `false` at the end of the data (its
    /// trailer, or nothing left). A row must have `fields` fields.
    pub(super) fn row(&mut self, fields: u16) -> Result<bool, StoreError> {
        if self.0.is_empty() {
            return Ok(false);
        }
        let count = self.take(2)?;
        match i16::from_be_bytes([count[0], count[1]]) {
            -1 => Ok(false),
            n if n == fields as i16 => Ok(true),
            _ => Err(corrupt("a row with an unexpected number of fields")),
        }
    }

    /// The next field's bytes, `None` for NULL.
    pub(super) fn field(&mut self) -> Result<Option<&'a [u8]>, StoreError> {
        match self.u32()? as i32 {
            -1 => Ok(None),
            len if len < 0 => Err(corrupt("a negative length")),
            len => self.take(len as usize).map(Some),
        }
    }

    /// A `bigint` that may be NULL.
    pub(super) fn int8_opt(&mut self) -> Result<Option<i64>, StoreError> {
        match self.field()? {
            None => Ok(None),
            Some(bytes) => match <[u8; 8]>::try_from(bytes) {
                Ok(be) => Ok(Some(i64::from_be_bytes(be))),
                Err(_) => Err(corrupt("a bigint not 8 bytes long")),
            },
        }
    }

    pub(super) fn int8(&mut self) -> Result<i64, StoreError> {
        self.int8_opt()?
            .ok_or_else(|| corrupt("NULL where a bigint must be"))
    }

    /// A `text` that may be NULL.
    pub(super) fn text_opt(&mut self) -> Result<Option<&'a str>, StoreError> {
        match self.field()? {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| corrupt("text not UTF-8")),
        }
    }

    pub(super) fn text(&mut self) -> Result<&'a str, StoreError> {
        self.text_opt()?
            .ok_or_else(|| corrupt("NULL where text must be"))
    }
}

#[cfg(test)]
mod tests {
    use super::{Cursor, past_header};

    /// One row of COPY data: `fields` as (length, bytes), `None` NULL.
    fn row(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = (fields.len() as i16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => out.extend((-1i32).to_be_bytes()),
                Some(b) => {
                    out.extend((b.len() as i32).to_be_bytes());
                    out.extend(*b);
                }
            }
        }
        out
    }

    #[test]
    fn rows_read_back_with_nulls_and_end_at_the_trailer() {
        let mut data = b"PGCOPY\n\xff\r\n\0".to_vec();
        data.extend([0, 0, 0, 0, 0, 0, 0, 2, 9, 9]); // flags, a 2-byte extension
        data.extend(row(&[Some(&7i64.to_be_bytes()), Some(b"h\xc3\xa9"), None]));
        data.extend(row(&[Some(&(-1i64).to_be_bytes()), None, Some(b"")]));
        data.extend((-1i16).to_be_bytes());
        let mut c = Cursor(past_header(&data).unwrap());
        assert!(c.row(3).unwrap());
        assert_eq!(c.int8().unwrap(), 7);
        assert_eq!(c.text().unwrap(), "hé");
        assert_eq!(c.text_opt().unwrap(), None);
        assert!(c.row(3).unwrap());
        assert_eq!(c.int8_opt().unwrap(), Some(-1));
        assert_eq!(c.field().unwrap(), None);
        assert_eq!(c.text_opt().unwrap(), Some(""));
        assert!(!c.row(3).unwrap());
        assert!(!c.row(3).unwrap(), "nothing after the trailer");
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        assert!(past_header(b"PGCOPY\n").is_err());
        assert!(past_header(b"PGCOPY\n\xff\r\n\0\0\x01\0\0\0\0\0\0").is_err());
        let wrong_width = row(&[Some(&[1, 2, 3, 4])]);
        let mut c = Cursor(&wrong_width);
        assert!(c.row(1).unwrap());
        assert!(c.int8().is_err());
        assert!(Cursor(&row(&[None])).row(2).is_err());
        let short = row(&[Some(b"abcdef")]);
        let mut c = Cursor(&short[..short.len() - 1]);
        assert!(c.row(1).unwrap());
        assert!(c.field().is_err());
        let mut c = Cursor(&row(&[None]));
        assert!(c.row(1).unwrap());
        assert!(c.int8().is_err(), "NULL bigint");
        let mut c = Cursor(&row(&[Some(b"\xff")]));
        assert!(c.row(1).unwrap());
        assert!(c.text().is_err(), "not UTF-8");
    }
}
