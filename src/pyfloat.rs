//! Python's number behaviour where the reference's output depends on it.
//!
//! `round(x, n)` in Python rounds the exact binary value of `x` half-to-even;
//! Rust's `{:.n}` formatting rounds the exact binary value too, so formatting
//! and parsing back gives the same double.

/// Python's `round(x, ndigits)` for a finite `x` (non-finite values pass through).
pub fn round(x: f64, ndigits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.ndigits$}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::round;

    #[test]
    fn matches_python_round() {
        // Values checked against CPython 3.12.
        assert_eq!(round(2.675, 2), 2.67); // 2.675 is 2.67499999... in binary
        assert_eq!(round(0.125, 2), 0.12); // exact half: to even
        assert_eq!(round(0.375, 2), 0.38);
        assert_eq!(round(2.5, 0), 2.0);
        assert_eq!(round(3.5, 0), 4.0);
        assert_eq!(round(21.41055, 3), 21.411);
        assert_eq!(round(-1.005, 2), -1.0);
        assert_eq!(round(1e300, 2), 1e300);
    }
}
