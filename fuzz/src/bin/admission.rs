//! Fuzz target `admission`: see `outpost_fuzz::admission`. Under AFL++ (`cargo afl fuzz`)
//! it is the persistent-mode loop; with paths it replays their files.

fn main() {
    outpost_fuzz::main_for("admission", outpost_fuzz::admission::run);
}
