// The sqlx::migrate! macro embeds migrations/ at compile time, but stable Rust cannot tell
// Cargo that the macro read those files, so a changed migration would not rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
