//! Fuzz target `roster`: see `outpost_fuzz::roster`. Under AFL++ (`cargo afl fuzz`)
//! it is the persistent-mode loop; with paths it replays their files.

fn main() {
    outpost_fuzz::main_for("roster", outpost_fuzz::roster::run);
}
