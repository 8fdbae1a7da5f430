//! Fuzz target `bundle`: see `outpost_fuzz::bundle`. Under AFL++ (`cargo afl fuzz`)
//! it is the persistent-mode loop; with paths it replays their files.

fn main() {
    outpost_fuzz::main_for("bundle", outpost_fuzz::bundle::run);
}
