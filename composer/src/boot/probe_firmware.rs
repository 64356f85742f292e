//! The KVM probe's firmware: a 64 KiB BIOS image that takes the CPU from
//! the reset vector to 64-bit long mode with paging, as every kernel's boot
//! does, and only then reports success on QEMU's `isa-debug-exit` port.
//!
//! A probe that stays in real mode is not enough: on some nested hosts KVM
//! runs real-mode code and fails at the first switch to protected mode (the
//! guest hangs, or QEMU reports "KVM internal error … emulation failure"
//! and stops the guest), so a kernel never gets past its setup code while
//! a real-mode probe succeeds.
//!
//! The code, at offset 0 of the image, which QEMU maps at linear
//! `0xf0000` (GNU as syntax; `[addr]` is the offset in the image):
//!
//! ```text
//!         .code16
//! [00]    cli
//!         xor   %ax, %ax
//!         mov   %ax, %es
//!         movl  $0x2003, %eax;  movl %eax, %es:0x1000   # PML4[0] → PDPT at 0x2000
//!         movl  $0x3003, %eax;  movl %eax, %es:0x2000   # PDPT[0] → PD at 0x3000
//!         mov   $0x3000, %di
//!         movl  $0x83, %eax                             # present, writable, 2 MiB page
//!         mov   $512, %cx
//! [27] 1: movl  %eax, %es:(%di);  movl $0, %es:4(%di)   # PD: identity map of 1 GiB
//!         addl  $0x200000, %eax;  add $8, %di
//!         loop  1b
//!         mov   $0xf000, %ax;  mov %ax, %ds
//!         lgdtl %ds:0xc0                                # the GDT below
//!         mov   %cr4, %eax;  orl $0x20, %eax;  mov %eax, %cr4      # PAE
//!         movl  $0x1000, %eax;  mov %eax, %cr3
//!         movl  $0xc0000080, %ecx;  rdmsr;  orl $0x100, %eax;  wrmsr  # EFER.LME
//!         mov   %cr0, %eax;  orl $0x80000001, %eax;  mov %eax, %cr0  # PE and PG
//!         ljmpl $0x08, $0xf0081                         # 64-bit code segment
//!         .code64
//! [81]    xor   %eax, %eax
//!         mov   %eax, %ds;  mov %eax, %es;  mov %eax, %ss  # null selectors, as Linux
//!         mov   $0x9000, %rsp
//!         push  $0x2a;  pop %rbx                        # the stack works
//!         mov   $0x800000, %rdi                         # RAM at 8 MiB, through the
//!         mov   %rbx, (%rdi);  mov (%rdi), %rax         #   page tables
//!         out   %al, $0xf4                              # QEMU exits with 0x2a*2+1
//! [a2] 3: hlt;  jmp 3b
//! [a8]    GDT: null; code 0x00af9a000000ffff (64-bit); data 0x00cf92000000ffff
//! [c0]    GDTR: limit 0x17, base 0xf00a8
//!
//! [fff0]  ljmpw $0xf000, $0x0000                        # the reset vector
//! ```
//!
//! Everything else is `hlt`.

/// The size of the image (QEMU maps a 64 KiB BIOS at `0xf0000`).
pub const SIZE: usize = 0x10000;

/// The code and data at offset 0, assembled from the listing above.
const CODE: [u8; 0xc6] = [
    // 16-bit: page tables at 0x1000, 0x2000, 0x3000.
    0xfa, 0x31, 0xc0, 0x8e, 0xc0, 0x66, 0xb8, 0x03, 0x20, 0x00, 0x00, 0x26, 0x66, 0xa3, 0x00, 0x10,
    0x66, 0xb8, 0x03, 0x30, 0x00, 0x00, 0x26, 0x66, 0xa3, 0x00, 0x20, 0xbf, 0x00, 0x30, 0x66, 0xb8,
    0x83, 0x00, 0x00, 0x00, 0xb9, 0x00, 0x02, 0x26, 0x66, 0x89, 0x05, 0x26, 0x66, 0xc7, 0x45, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x66, 0x05, 0x00, 0x00, 0x20, 0x00, 0x83, 0xc7, 0x08, 0xe2, 0xe8,
    // 16-bit: GDT, PAE, CR3, EFER.LME, PE|PG, far jump to 0x08:0xf0081.
    0xb8, 0x00, 0xf0, 0x8e, 0xd8, 0x66, 0x0f, 0x01, 0x16, 0xc0, 0x00, 0x0f, 0x20, 0xe0, 0x66, 0x83,
    0xc8, 0x20, 0x0f, 0x22, 0xe0, 0x66, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0x66, 0xb9,
    0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x66, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20,
    0xc0, 0x66, 0x0d, 0x01, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x81, 0x00, 0x0f, 0x00,
    0x08, 0x00, // 64-bit (offset 0x81): null selectors, stack, RAM at 8 MiB, out 0xf4.
    0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x48, 0xc7, 0xc4, 0x00, 0x90, 0x00, 0x00, 0x6a,
    0x2a, 0x5b, 0x48, 0xc7, 0xc7, 0x00, 0x00, 0x80, 0x00, 0x48, 0x89, 0x1f, 0x48, 0x8b, 0x07, 0xe6,
    0xf4, 0xf4, 0xeb, 0xfd, // hlt; jmp back
    0x8d, 0x74, 0x00, // padding (a no-op `lea`)
    // GDT (offset 0xa8): null, 64-bit code, data.
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00,
    // GDTR (offset 0xc0): limit 23, base 0xf00a8.
    0x17, 0x00, 0xa8, 0x00, 0x0f, 0x00,
];

/// The reset vector at offset 0xfff0: `ljmpw $0xf000, $0x0000`.
const RESET: [u8; 5] = [0xea, 0x00, 0x00, 0x00, 0xf0];

/// The firmware image.
pub fn image() -> Vec<u8> {
    let mut image = vec![0xf4_u8; SIZE];
    image[..CODE.len()].copy_from_slice(&CODE);
    image[0xfff0..0xfff0 + RESET.len()].copy_from_slice(&RESET);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offset of the 64-bit code, the far jump's target.
    const LONG_MODE: usize = 0x81;
    /// Offset of the GDT and of the GDTR that points at it.
    const GDT: usize = 0xa8;
    const GDTR: usize = 0xc0;
    /// Where QEMU maps the image.
    const BASE: u32 = 0xf0000;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn the_reset_vector_jumps_to_the_code() {
        let image = image();
        assert_eq!(image.len(), SIZE);
        assert_eq!(&image[0xfff0..0xfff5], &RESET);
        assert_eq!(image[0], 0xfa, "cli first");
    }

    #[test]
    fn addresses_in_the_code_agree_with_its_layout() {
        let image = image();
        // lgdtl %ds:GDTR
        assert_eq!(
            &image[0x44..0x4a],
            &[0x66, 0x0f, 0x01, 0x16, GDTR as u8, 0x00]
        );
        // GDTR: limit of three descriptors, base at the GDT's linear address.
        assert_eq!(
            u16::from_le_bytes([image[GDTR], image[GDTR + 1]]),
            3 * 8 - 1
        );
        assert_eq!(u32_at(&image, GDTR + 2), BASE + GDT as u32);
        assert_eq!(&image[GDT..GDT + 8], &[0; 8]);
        // ljmpl $0x08, $BASE + LONG_MODE, and the 64-bit code starts there.
        assert_eq!(&image[0x79..0x7b], &[0x66, 0xea]);
        assert_eq!(u32_at(&image, 0x7b), BASE + LONG_MODE as u32);
        assert_eq!(&image[0x7f..0x81], &[0x08, 0x00]);
        assert_eq!(&image[LONG_MODE..LONG_MODE + 2], &[0x31, 0xc0]);
        // The 64-bit code segment has L set and D clear.
        assert_eq!(image[GDT + 8 + 6], 0xaf);
    }
}
