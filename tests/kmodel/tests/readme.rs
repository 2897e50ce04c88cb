//! The README's table of KMDF checks is the one `wskudp_kmodel::wdf::CHECKS` describes:
//! regenerate it with `cargo run -p wskudp-kmodel --example kmdf_checks_table`.

#[test]
fn readme_lists_every_kmdf_check() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let table = wskudp_kmodel::wdf::checks_table();
    assert!(
        readme.contains(&table),
        "README.md's KMDF check table is stale; regenerate it with \
         `cargo run -p wskudp-kmodel --example kmdf_checks_table`"
    );
}

/// The README's table of provider profiles is the one `wskudp_kmodel::profile` computes:
/// regenerate it with `cargo run -p wskudp-kmodel --example provider_profiles_table`.
#[test]
fn readme_lists_every_provider_profile_rule() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let table = wskudp_kmodel::profile::profiles_table();
    assert!(
        readme.contains(table.trim_end()),
        "README.md's provider profile table is stale; regenerate it with \
         `cargo run -p wskudp-kmodel --example provider_profiles_table`"
    );
}
