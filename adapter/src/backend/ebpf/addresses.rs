//! Where code is, for the probes armed outside `armed`'s uprobe links:
//! the file offset of a link-time address (from the ELF segments), and
//! the mappings of a process (`/proc/PID/maps`), which turn file offsets
//! into run-time addresses and back.

/// The file offset of link-time address `addr` in `file`.
pub fn file_offset<'d, R: object::ReadRef<'d>>(
    file: &object::File<'d, R>,
    addr: u64,
) -> Option<u64> {
    use object::{Object, ObjectSegment};
    file.segments().find_map(|seg| {
        let (offset, size) = seg.file_range();
        let start = seg.address();
        (addr >= start && addr < start + size).then(|| addr - start + offset)
    })
}

/// One line of `/proc/PID/maps`.
pub struct Mapping<'a> {
    pub start: u64,
    pub end: u64,
    /// The file offset mapped at `start`.
    pub offset: u64,
    pub path: &'a str,
}

/// The mappings listed in the text of a `/proc/PID/maps` (those without a
/// path have an empty one).
pub fn mappings(maps: &str) -> impl Iterator<Item = Mapping<'_>> {
    maps.lines().filter_map(|line| {
        // start-end perms offset dev inode path
        let mut f = line.split_whitespace();
        let (start, end) = f.next()?.split_once('-')?;
        let (start, end) = (
            u64::from_str_radix(start, 16).ok()?,
            u64::from_str_radix(end, 16).ok()?,
        );
        let offset = u64::from_str_radix(f.nth(1)?, 16).ok()?;
        let path = f.nth(2).unwrap_or("");
        Some(Mapping {
            start,
            end,
            offset,
            path,
        })
    })
}
