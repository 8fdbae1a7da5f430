//! Fuzz target `frame`: see `outpost_fuzz::frame`. Under AFL++ (`cargo afl fuzz`)
//! it is the persistent-mode loop; with paths it replays their files.

fn main() {
    outpost_fuzz::main_for("frame", outpost_fuzz::frame::run);
}
