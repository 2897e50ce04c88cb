//! Prints the README's table of what each Windows build the model's WSK provider imitates
//! does with each send option, with sources, from `wskudp_kmodel::profile::rules`:
//! `cargo run -p wskudp-kmodel --example provider_profiles_table`.

fn main() {
    print!("{}", wskudp_kmodel::profile::profiles_table());
}
