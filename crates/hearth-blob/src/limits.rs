/// Limits on a code package. Defined once; enforced by [`crate::validate_package`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Size of the zip as uploaded.
    pub max_zipped_bytes: u64,
    /// Sum of the sizes of all entries once unzipped.
    pub max_unzipped_bytes: u64,
    pub max_entries: usize,
    /// An entry whose unzipped size exceeds `ratio_min_entry_bytes` may be at most this many
    /// times larger than its compressed size (zip-bomb signal).
    pub max_compression_ratio: u64,
    pub ratio_min_entry_bytes: u64,
    /// Longest symlink target read from a package: the longest Linux can create (`PATH_MAX`
    /// less its NUL).
    pub max_symlink_target_bytes: u64,
}

impl PackageLimits {
    pub const DEFAULT: PackageLimits = PackageLimits {
        max_zipped_bytes: 50 * 1024 * 1024,
        max_unzipped_bytes: 250 * 1024 * 1024,
        max_entries: 10_000,
        max_compression_ratio: 100,
        ratio_min_entry_bytes: 1024 * 1024,
        max_symlink_target_bytes: 4095,
    };
}

impl Default for PackageLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
