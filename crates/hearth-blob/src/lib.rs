//! Code packages: validation of uploaded zips, content-addressed storage through
//! `object_store`, safe unpacking, and fetching packages from an S3-compatible store.
//!
//! Nothing reaches storage before [`validate_package`] has accepted it, and a stored package
//! never changes: its key is the sha256 of its bytes.

mod code_store;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
mod limits;
mod object_source;
mod package_path;
mod unpack;
mod validate;

pub use code_store::{CodeStore, CodeStoreError};
pub use limits::PackageLimits;
pub use object_source::{ObjectSource, ObjectSourceError, S3Settings};
pub use unpack::{UnpackError, unpack_package};
pub use validate::{PackageError, PackageSummary, has_executable, has_file, validate_package};

/// The path rules on their own, for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::package_path::{
        LinkProblem, MAX_LINK_DEPTH, MAX_NAME_BYTES, MAX_NAME_PART_BYTES, PackageTree, PathProblem, normalize,
    };
}
