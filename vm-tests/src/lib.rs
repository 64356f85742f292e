//! The QEMU test driver.
