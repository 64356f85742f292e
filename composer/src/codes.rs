//! The stable codes of the composer's errors, by area, as docs/errors.md
//! lists them: E04xx other, E05xx store, E06xx Debian packages, E07xx build,
//! E08xx images and boot, E09xx generations, E10xx binary caches, E11xx deploy. (The language's own codes,
//! E01xx–E03xx and W03xx, are in `imago-lang`.) Each error type assigns
//! its codes in a `code()` method beside it; the command line finds the
//! code of an error by walking its chain (see `cli::report`).

pub use imago_lang::diag::Code;

macro_rules! codes {
    ($($name:ident = $code:literal;)*) => {
        $(pub const $name: Code = Code($code);)*
        /// Every code above, in order.
        pub const ALL: &[Code] = &[$($name),*];
    };
}

codes! {
    OTHER = "E0401";
    SETTINGS = "E0402";
    USAGE = "E0403";

    STORE_IO = "E0501";
    STORE_DB = "E0502";
    STORE_SCHEMA = "E0503";
    STORE_BAD_PATH = "E0504";
    STORE_REFUSED_FILE = "E0505";
    STORE_NO_OUTPUT = "E0506";
    STORE_NOT_VALID = "E0507";
    STORE_CORRUPT = "E0508";
    STORE_REBUILD_DIFFERS = "E0509";
    STORE_NO_DEFAULT_DIR = "E0510";
    STORE_UNMANAGED = "E0511";
    STORE_BAD_ROOT = "E0512";
    STORE_BATCH = "E0513";
    ARCHIVE_IO = "E0514";
    ARCHIVE_MALFORMED = "E0515";
    ARCHIVE_MISMATCH = "E0516";
    ARCHIVE_TERMINAL = "E0517";

    LOCK_IO = "E0601";
    LOCK_SYNTAX = "E0602";
    LOCK_INVALID = "E0603";
    FETCH_MISMATCH = "E0604";
    FETCH_OFFLINE = "E0605";
    FETCH_UNAVAILABLE = "E0606";
    FETCH_IO = "E0607";
    APT = "E0608";
    CONTROL = "E0609";
    UNPACK_REFUSED = "E0610";
    DEB_FORMAT = "E0611";
    DEB_IO = "E0612";
    LOCK_MISMATCH = "E0613";

    NOT_AN_OBJECT = "E0701";
    NOT_A_TOPLEVEL = "E0702";
    BAD_ATTR = "E0703";
    STEP_INVALID = "E0704";
    GRAPH_MISSING = "E0705";
    GRAPH_CYCLE = "E0706";
    UNKNOWN_BUILDER = "E0707";
    THREADS = "E0708";
    STEP_FAILED = "E0709";
    STEP_PARAMS = "E0710";
    STEP_PLACEHOLDER = "E0711";
    BUILDER_IO = "E0712";
    STEP_INTERNAL = "E0713";
    NO_OUTPUT = "E0714";

    IMAGE_IO = "E0801";
    IMAGE_INVALID = "E0802";
    IMAGE_TOO_SMALL = "E0803";
    IMAGE_TOOL = "E0804";
    IMAGE_GPT = "E0805";
    BOOT_SPEC = "E0806";
    INITRD = "E0807";
    KERNEL_MODULES = "E0808";
    QEMU = "E0809";

    GENERATIONS_IO = "E0901";
    NO_PROFILE = "E0902";
    NO_ESP = "E0903";
    NO_SUCH_GENERATION = "E0904";
    DELETE_CURRENT = "E0905";
    NO_CURRENT = "E0906";
    NOTHING_OLDER = "E0907";
    BAD_AGE = "E0908";
    DELETE_IN_USE = "E0909";
    SWITCH_LOCK_HELD = "E0910";
    SWITCH_LOCK = "E0911";

    CACHE_LOCATION = "E1001";
    CACHE_KEY = "E1002";
    CACHE_KEY_EXISTS = "E1003";
    CACHE_IO = "E1004";
    CACHE_MISSING = "E1005";
    CACHE_UNTRUSTED = "E1006";
    CACHE_BAD_OBJECT = "E1007";
    CACHE_REGISTRY = "E1008";
    CACHE_WRITE_REFUSED = "E1009";

    DEPLOY_TARGETS_FILE = "E1101";
    DEPLOY_TARGET = "E1102";
    DEPLOY_ATTR_WITH_TOPLEVEL = "E1103";
    DEPLOY_FAILED = "E1104";
    DEPLOY_ROLLED_BACK = "E1105";
    DEPLOY_INTERRUPTED = "E1106";
    DEPLOY_TARGET_SUBSTITUTER = "E1107";
}
