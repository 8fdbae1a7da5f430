//! Fuzz target `engine_receive`: see `outpost_fuzz::engine`. Under AFL++ (`cargo afl fuzz`)
//! it is the persistent-mode loop; with paths it replays their files.

fn main() {
    outpost_fuzz::main_for("engine_receive", outpost_fuzz::engine::run);
}
