//! Prints the README's table of KMDF checks from `wskudp_kmodel::wdf::CHECKS`:
//! `cargo run -p wskudp-kmodel --example kmdf_checks_table`.

fn main() {
    print!("{}", wskudp_kmodel::wdf::checks_table());
}
