//! int8 scalar quantization for the graph walk.
//!
//! Each dimension `i` gets its own range `[lo_i, lo_i + 127 s_i]` (trained on the segment's
//! vectors), and a vector is stored as 7-bit codes `c_i = round((x_i - lo_i) / s_i)`. For a query
//! `q`, `q . x ~ sum q_i lo_i + sum (q_i s_i) c_i`: the first sum is a per-query constant, the
//! second an integer dot product once `w_i = q_i s_i` is itself quantized to i8 with one scale.
//! Codes are 7-bit so AVX2's `maddubs` (u8 x i8, pairs summed in i16) cannot saturate. The walk
//! only needs the order to be right; the best candidates are rescored on the stored full vectors.

/// Largest code: 7 bits.
const LEVELS: f32 = 127.0;

/// Per-dimension ranges of one segment's vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    lo: Vec<f32>,
    step: Vec<f32>,
}

/// A query prepared for the codes of one [`Quantizer`].
pub struct QuantizedQuery {
    pub codes: Vec<i8>,
    /// `sum q_i lo_i`.
    bias: f32,
    /// Scale of the i8 query.
    scale: f32,
}

impl QuantizedQuery {
    /// Approximate similarity from the integer dot product of the codes.
    #[inline]
    pub fn similarity(&self, dot: i32) -> f32 {
        self.bias + self.scale * dot as f32
    }

    /// `(bias, scale)`: `similarity(dot) = bias + scale * dot`.
    pub fn parts(&self) -> (f32, f32) {
        (self.bias, self.scale)
    }
}

impl Quantizer {
    /// Ranges covering every value of `rows` (each `dim` long).
    pub fn train<'a>(dim: usize, rows: impl Iterator<Item = &'a [f32]>) -> Self {
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for row in rows {
            for ((l, h), v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                *l = l.min(*v);
                *h = h.max(*v);
            }
        }
        let step = lo
            .iter_mut()
            .zip(&hi)
            .map(|(l, h)| {
                if !l.is_finite() {
                    *l = 0.0;
                }
                let range = if h.is_finite() { h - *l } else { 0.0 };
                if range > 0.0 { range / LEVELS } else { 1.0 }
            })
            .collect();
        Quantizer { lo, step }
    }

    /// A quantizer from its stored parameters.
    pub fn from_parts(lo: Vec<f32>, step: Vec<f32>) -> Self {
        Quantizer { lo, step }
    }

    pub fn lo(&self) -> &[f32] {
        &self.lo
    }

    pub fn step(&self) -> &[f32] {
        &self.step
    }

    /// The codes of one vector into `out` (values outside the trained range are clamped).
    pub fn encode(&self, row: &[f32], out: &mut [u8]) {
        for (((o, v), l), s) in out.iter_mut().zip(row).zip(&self.lo).zip(&self.step) {
            *o = ((v - l) / s).round().clamp(0.0, LEVELS) as u8;
        }
    }

    /// Prepares `q` for [`super::kernel::dot_codes`] against this quantizer's codes.
    pub fn query(&self, q: &[f32]) -> QuantizedQuery {
        let bias = q.iter().zip(&self.lo).map(|(q, l)| q * l).sum();
        let w: Vec<f32> = q.iter().zip(&self.step).map(|(q, s)| q * s).collect();
        let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / LEVELS } else { 1.0 };
        let codes = w
            .iter()
            .map(|v| (v / scale).round().clamp(-LEVELS, LEVELS) as i8)
            .collect();
        QuantizedQuery { codes, bias, scale }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::kernel::dot_codes;

    #[test]
    fn quantized_dot_products_track_the_exact_ones() {
        let mut rng = fastrand::Rng::with_seed(7);
        let dim = 96;
        let rows: Vec<Vec<f32>> = (0..200)
            .map(|_| (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect())
            .collect();
        let qz = Quantizer::train(dim, rows.iter().map(|r| r.as_slice()));
        let q: Vec<f32> = (0..dim).map(|_| rng.f32() - 0.5).collect();
        let qq = qz.query(&q);
        let mut codes = vec![0u8; dim];
        let mut worst = 0f32;
        for row in &rows {
            qz.encode(row, &mut codes);
            assert!(codes.iter().all(|c| *c <= 127));
            let exact: f32 = q.iter().zip(row).map(|(a, b)| a * b).sum();
            let approx = qq.similarity(dot_codes(&codes, &qq.codes));
            worst = worst.max((exact - approx).abs());
        }
        // |q| ~ 2.8 here and the step is 2/127: the error is a small fraction of the spread.
        assert!(worst < 0.15, "worst error {worst}");
    }

    #[test]
    fn constant_dimensions_and_empty_training_are_safe() {
        let rows = [vec![0.5f32, 1.0], vec![0.5, -1.0]];
        let qz = Quantizer::train(2, rows.iter().map(|r| r.as_slice()));
        let mut c = [0u8; 2];
        qz.encode(&rows[1], &mut c);
        assert_eq!(c, [0, 0]);
        let empty = Quantizer::train(3, std::iter::empty());
        assert_eq!(empty.step(), &[1.0, 1.0, 1.0]);
    }
}
