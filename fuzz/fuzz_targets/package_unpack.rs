//! Arbitrary bytes as an uploaded code package (`hearth_blob::validate_package`). Never
//! panics; a package it accepts unpacks into an empty folder without error, writes nothing
//! outside it, and none of its links leads outside once followed (see `Scene::check`).
#![no_main]

use std::sync::LazyLock;

use hearth_fuzz::Scene;
use libfuzzer_sys::fuzz_target;

static SCENE: LazyLock<Scene> = LazyLock::new(Scene::new);

fuzz_target!(|data: &[u8]| {
    SCENE.check(data);
});
