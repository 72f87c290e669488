//! Every WGSL shader of the crate parses and validates with naga, in the ordinary CPU test run:
//! a broken shader fails here on a machine without any GPU, not first on a user's.

use clot_stages::gpu::SHADERS;

#[test]
fn every_shader_parses_and_validates() {
    assert!(!SHADERS.is_empty());
    for (path, source) in SHADERS {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{path}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{path}: {}", e.emit_to_string(source)));
        assert!(
            module
                .entry_points
                .iter()
                .all(|e| e.stage == naga::ShaderStage::Compute),
            "{path}: only compute entry points"
        );
    }
}

/// Each `*.wgsl` file under `src` is listed in `SHADERS` (so the test above sees it).
#[test]
fn shaders_lists_every_wgsl_file() {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "wgsl") {
                let rel = path.strip_prefix(root).expect("under src");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let mut listed: Vec<String> = SHADERS.iter().map(|(p, _)| p.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}
