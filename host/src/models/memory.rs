//! Whether a model fits in memory before it is loaded: its parameters counted from the
//! safetensors headers (nothing else is read), times the bytes each takes in the dtype asked
//! for, against the memory available now (`MemAvailable`, or `MIRA_MODEL_MEMORY`). A model that
//! does not fit is refused with the dtypes it would fit in, instead of being loaded until the
//! machine swaps.

use std::io::Read;
use std::path::Path;

use super::{ModelDType, ModelError};

/// Caps the memory a model may take (`24GiB`, `512MiB`, or bytes); default: what the kernel says
/// is available.
pub const MODEL_MEMORY_ENV: &str = "MIRA_MODEL_MEMORY";

/// Largest safetensors header read (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Parameters in safetensors files, from their headers.
pub fn parameters(files: &[std::path::PathBuf]) -> Result<u64, ModelError> {
    let mut total = 0u64;
    for f in files {
        total += header_parameters(f)?;
    }
    Ok(total)
}

fn header_parameters(path: &Path) -> Result<u64, ModelError> {
    let bad = |m: String| ModelError::Files(format!("{}: {m}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| bad(format!("cannot read the header: {e}")))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(bad(format!("a header of {len} bytes is not safetensors")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("cannot read the header: {e}")))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    Ok(json
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| v["shape"].as_array())
        .map(|shape| shape.iter().map(|d| d.as_u64().unwrap_or(0)).product::<u64>())
        .sum())
}

/// Bytes available for a model now.
pub fn available() -> Option<u64> {
    if let Ok(v) = std::env::var(MODEL_MEMORY_ENV)
        && let Some(bytes) = parse_bytes(&v)
    {
        return Some(bytes);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `24GiB`, `512MiB`, `300KiB`, `8GB`, or plain bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let n: f64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * scale) as u64)
}

/// Bytes a model of `params` parameters takes in `dtype`, `dense` of them (embeddings) kept in
/// f32 by `q8`.
pub fn footprint(params: u64, dense: u64, dtype: ModelDType) -> u64 {
    match dtype {
        ModelDType::F32 => params * 4,
        ModelDType::F16 | ModelDType::BF16 => params * 2,
        // Per block of 32 weights: 32 int8 and, on Mira's VNNI kernel, an f32 scale and an i32
        // correction (40 bytes; GGML's Q8_0 elsewhere takes 34).
        ModelDType::Q8 => dense.min(params) * 4 + (params - dense.min(params)) * 40 / 32,
    }
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Refuses a model that does not fit in `available` bytes, saying which dtypes would.
pub fn check_fits(
    what: &str,
    params: u64,
    dense: u64,
    dtype: ModelDType,
    available: u64,
    hint: &str,
) -> Result<(), ModelError> {
    let need = footprint(params, dense, dtype);
    if need <= available {
        return Ok(());
    }
    let fits: Vec<String> = [ModelDType::BF16, ModelDType::Q8]
        .into_iter()
        .filter(|d| *d != dtype)
        .map(|d| (d, footprint(params, dense, d)))
        .filter(|(_, b)| *b <= available)
        .map(|(d, b)| format!("{} ({})", d.name(), gb(b)))
        .collect();
    let advice = match fits.as_slice() {
        [] => "no dtype makes it fit: use a smaller model or a machine with more memory".to_owned(),
        some => format!("it would fit as {}: {hint}", some.join(" or ")),
    };
    Err(ModelError::Input(format!(
        "{what} has {:.2}B parameters and needs about {} as {} but {} is available ({MODEL_MEMORY_ENV} or \
         MemAvailable); {advice}",
        params as f64 / 1e9,
        gb(need),
        dtype.name(),
        gb(available)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_advice() {
        assert_eq!(parse_bytes("24GiB"), Some(24 << 30));
        assert_eq!(parse_bytes("512 MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("lots"), None);
        // An 8B model (0.6B of it embeddings) on a 24 GB machine.
        let (p, e) = (8_000_000_000, 600_000_000);
        assert_eq!(footprint(p, e, ModelDType::F32), 32_000_000_000);
        assert_eq!(footprint(p, e, ModelDType::BF16), 16_000_000_000);
        // 40 bytes per block of 32 (Mira's int8 kernel): 2.4 GB of embeddings + 9.25 GB.
        assert_eq!(footprint(p, e, ModelDType::Q8), 2_400_000_000 + 9_250_000_000);
        let m = check_fits("the 8B", p, e, ModelDType::F32, 24_000_000_000, "set q8")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("32.0 GB as f32") && m.contains("bf16 (16.0 GB)") && m.contains("q8 ("),
            "{m}"
        );
        let m = check_fits("the 8B", p, e, ModelDType::F32, 12_000_000_000, "x")
            .unwrap_err()
            .to_string();
        assert!(!m.contains("bf16 (") && m.contains("q8 ("), "{m}");
        assert!(check_fits("the 8B", p, e, ModelDType::Q8, 12_000_000_000, "x").is_ok());
    }
}
