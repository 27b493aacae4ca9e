//! hearth-wasm against the real engine: real modules and components, real compiles, the
//! on-disk cache in a temporary folder.

mod hostile;
mod programs;
mod support;
