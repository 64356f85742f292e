//! Fuzzes the store path parser: any text either parses into a path whose
//! parts obey the rules and print back to the same text, or is refused
//! with an error; absolute paths likewise. Never a panic.
#![no_main]

use imago::store::StorePath;
use imago::store::path::{HASH_LEN, MAX_NAME_LEN, NIX_BASE32_ALPHABET};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = text.parse::<StorePath>() {
        assert_eq!(p.as_str(), text);
        assert_eq!(p.hash_part().len(), HASH_LEN);
        assert!(
            p.hash_part()
                .bytes()
                .all(|b| NIX_BASE32_ALPHABET.as_bytes().contains(&b))
        );
        assert!(!p.name().is_empty() && p.name().len() <= MAX_NAME_LEN);
        assert!(!p.name().starts_with('.'));
        assert!(!p.name().contains('/'));
        let absolute = p.to_absolute();
        let (back, sub) = StorePath::from_absolute(&absolute).expect("round trip");
        assert_eq!(back, p);
        assert_eq!(sub, "");
    }
    if let Ok((p, sub)) = StorePath::from_absolute(text) {
        assert!(text.starts_with("/imago/store/"));
        assert!(!sub.split('/').any(|c| c == ".." || c == "."));
        assert_eq!(format!("{}{sub}", p.to_absolute()), text);
    }
});
