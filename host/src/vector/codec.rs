//! Vector values to bytes and back. Validation lives here so ingest and queries share it: the
//! length must match the field, every element must be finite, and cosine vectors are normalised.

use half::f16;

use crate::schema::{Metric, VectorDtype, VectorSpec};

/// Validates a vector against a field and normalises it when the metric asks.
pub fn prepare(values: &[f32], spec: &VectorSpec) -> Result<Vec<f32>, String> {
    if values.len() != spec.dim {
        return Err(format!("expected {} elements, got {}", spec.dim, values.len()));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("element {i} is not a finite number ({})", values[i]));
    }
    let mut out = values.to_vec();
    if spec.metric == Metric::Cosine {
        let norm = out.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err("a zero vector has no direction, so it cannot be used with the cosine metric".into());
        }
        out.iter_mut().for_each(|v| *v = (f64::from(*v) / norm) as f32);
    }
    Ok(out)
}

/// Validates, normalises and encodes a vector as the little-endian bytes the column stores.
pub fn encode(values: &[f32], spec: &VectorSpec) -> Result<Vec<u8>, String> {
    let v = prepare(values, spec)?;
    let mut out = Vec::with_capacity(spec.row_bytes());
    match spec.dtype {
        VectorDtype::F32 => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        VectorDtype::F16 => v
            .iter()
            .for_each(|x| out.extend_from_slice(&f16::from_f32(*x).to_le_bytes())),
    }
    Ok(out)
}

/// Most vectors one document may hold in a field (one per image of an image list).
pub const MAX_VECTORS_PER_DOC: usize = 256;

/// The column value of a document's `index`-th vector (0-based): the first is stored as its
/// bytes alone (so single-vector documents are as they always were), the others behind a
/// little-endian u16 index, so the matrix can tell which image a vector came from whatever
/// order the column's dictionary keeps them in.
pub fn encode_nth(values: &[f32], spec: &VectorSpec, index: usize) -> Result<Vec<u8>, String> {
    if index >= MAX_VECTORS_PER_DOC {
        return Err(format!("at most {MAX_VECTORS_PER_DOC} vectors per document"));
    }
    let bytes = encode(values, spec)?;
    Ok(match index {
        0 => bytes,
        i => [(i as u16).to_le_bytes().as_slice(), &bytes].concat(),
    })
}

/// A column value as (index, vector bytes); `None` when its length fits neither form.
pub fn split_nth(value: &[u8], row_bytes: usize) -> Option<(u16, &[u8])> {
    if value.len() == row_bytes {
        Some((0, value))
    } else if value.len() == row_bytes + 2 {
        Some((u16::from_le_bytes([value[0], value[1]]), &value[2..]))
    } else {
        None
    }
}

/// Decodes column bytes back to f32 (used by tests and tools; the scan reads the matrix directly).
pub fn decode(bytes: &[u8], dtype: VectorDtype) -> Vec<f32> {
    match dtype {
        VectorDtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        VectorDtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dim: usize, dtype: VectorDtype, metric: Metric) -> VectorSpec {
        VectorSpec {
            dim,
            dtype,
            metric,
            index: crate::schema::VectorIndex::Flat,
        }
    }

    #[test]
    fn cosine_normalises_and_round_trips() {
        let s = spec(2, VectorDtype::F32, Metric::Cosine);
        let b = encode(&[3.0, 4.0], &s).unwrap();
        assert_eq!(decode(&b, VectorDtype::F32), vec![0.6, 0.8]);
        let s16 = spec(2, VectorDtype::F16, Metric::Dot);
        let b = encode(&[3.0, -4.5], &s16).unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(decode(&b, VectorDtype::F16), vec![3.0, -4.5]);
    }

    #[test]
    fn rejects_bad_vectors() {
        let s = spec(3, VectorDtype::F32, Metric::Cosine);
        assert_eq!(prepare(&[1.0, 2.0], &s).unwrap_err(), "expected 3 elements, got 2");
        assert!(prepare(&[1.0, f32::NAN, 2.0], &s).unwrap_err().contains("element 1"));
        assert!(prepare(&[0.0, 0.0, 0.0], &s).unwrap_err().contains("zero vector"));
    }
}
