//! Fuzzes the strict tar reader used by closure import: arbitrary bytes
//! give entries or an error, never a panic, an unbounded allocation or an
//! endless loop.
#![no_main]

use imago::store::archive::tar::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut entries = 0;
    while let Ok(Some(h)) = r.next_entry() {
        entries += 1;
        assert!(entries <= data.len() / 512 + 1);
        let mut sink = std::io::sink();
        if r.copy_data(&mut sink).is_err() {
            break;
        }
        let _ = h;
    }
});
