//! A read-only reader of bbolt files, etcd's backend format (and so the format of an etcd
//! snapshot): enough to walk every bucket's keys in order, as `snapshot status` does.
//! Errors carry bbolt's messages.

/// bbolt's page header: id, flags, count, overflow.
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;

/// One key of a tree: the key, its value (for a nested bucket, the bucket's header), and
/// whether it names a nested bucket.
pub struct Entry<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub is_bucket: bool,
}

/// An open bbolt file.
pub struct Db {
    data: Vec<u8>,
    page_size: usize,
    root: u64,
    /// The high-water page id: the file's size in use is `pgid * page_size`.
    pgid: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// FNV-1a, 64 bits: bbolt's meta page checksum.
fn fnv64a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A meta page (at `offset`): (page size, root bucket page, pgid, txid), or bbolt's error.
fn meta(data: &[u8], offset: usize) -> Result<(usize, u64, u64, u64), String> {
    let m = offset + PAGE_HEADER;
    let field = |at: usize| u64_at(data, m + at).ok_or("invalid database");
    if u32_at(data, m) != Some(MAGIC) {
        return Err("invalid database".to_string());
    }
    if u32_at(data, m + 4) != Some(VERSION) {
        return Err("version mismatch".to_string());
    }
    let sum = data.get(m..m + 56).map(fnv64a);
    if sum != u64_at(data, m + 56) {
        return Err("checksum error".to_string());
    }
    let page_size = u32_at(data, m + 8).ok_or("invalid database")? as usize;
    Ok((page_size, field(16)?, field(40)?, field(48)?))
}

impl Db {
    /// Reads `data` (a whole file) as bbolt's `Open` would, picking the newer valid meta page.
    pub fn open(data: Vec<u8>) -> Result<Db, String> {
        // bbolt reads the page size from the first 4 KiB, assuming 4 KiB when it cannot.
        if data.len() < 4096 {
            return Err("invalid database".to_string());
        }
        let first = meta(&data, 0);
        let page_size = match &first {
            Ok((size, ..)) if *size >= PAGE_HEADER + 64 => *size,
            _ => 4096,
        };
        if data.len() < page_size * 2 {
            return Err("file size too small".to_string());
        }
        let second = meta(&data, page_size);
        let (page_size, root, pgid, _) = match (first, second) {
            (Ok(a), Ok(b)) => {
                if b.3 > a.3 {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e), Err(_)) => return Err(e),
        };
        Ok(Db {
            data,
            page_size,
            root,
            pgid,
        })
    }

    /// bbolt's `Tx.Size`.
    pub fn size(&self) -> u64 {
        self.pgid * self.page_size as u64
    }

    fn page(&self, id: u64) -> Result<&[u8], String> {
        let start = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_mul(self.page_size))
            .filter(|s| *s < self.data.len())
            .ok_or_else(|| format!("page {id}: beyond the end of the file"))?;
        Ok(&self.data[start..])
    }

    /// The entries of the B+tree rooted at `page`, in key order.
    fn walk<'a>(&'a self, page: &'a [u8], out: &mut Vec<Entry<'a>>) -> Result<(), String> {
        let bad = || "corrupt page".to_string();
        let flags = u16_at(page, 8).ok_or_else(bad)?;
        let count = usize::from(u16_at(page, 10).ok_or_else(bad)?);
        for i in 0..count {
            let e = PAGE_HEADER + i * ELEMENT;
            if flags & BRANCH_PAGE != 0 {
                let child = u64_at(page, e + 8).ok_or_else(bad)?;
                self.walk(self.page(child)?, out)?;
            } else if flags & LEAF_PAGE != 0 {
                let kind = u32_at(page, e).ok_or_else(bad)?;
                let pos = e + u32_at(page, e + 4).ok_or_else(bad)? as usize;
                let ksize = u32_at(page, e + 8).ok_or_else(bad)? as usize;
                let vsize = u32_at(page, e + 12).ok_or_else(bad)? as usize;
                out.push(Entry {
                    key: page.get(pos..pos + ksize).ok_or_else(bad)?,
                    value: page.get(pos + ksize..pos + ksize + vsize).ok_or_else(bad)?,
                    is_bucket: kind & BUCKET_LEAF != 0,
                });
            } else {
                return Err(bad());
            }
        }
        Ok(())
    }

    /// The top-level keys, which in etcd's backend are all bucket names.
    pub fn roots(&self) -> Result<Vec<Entry<'_>>, String> {
        let mut out = Vec::new();
        self.walk(self.page(self.root)?, &mut out)?;
        Ok(out)
    }

    /// The entries of a nested bucket, given its entry in the root tree. The bucket's header
    /// is its root page, then (for an inline bucket, root 0) the bucket's own page.
    pub fn bucket<'a>(&'a self, header: &Entry<'a>) -> Result<Vec<Entry<'a>>, String> {
        let root = u64_at(header.value, 0).ok_or("corrupt bucket")?;
        let page = if root == 0 {
            header.value.get(16..).ok_or("corrupt bucket")?
        } else {
            self.page(root)?
        };
        let mut out = Vec::new();
        self.walk(page, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_bbolt() {
        assert_eq!(
            Db::open(vec![0; 100]).err(),
            Some("invalid database".to_string())
        );
        assert_eq!(
            Db::open(vec![0; 5000]).err(),
            Some("file size too small".to_string())
        );
        assert_eq!(
            Db::open(vec![0; 16384]).err(),
            Some("invalid database".to_string())
        );
    }
}
