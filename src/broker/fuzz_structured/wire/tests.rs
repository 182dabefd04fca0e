//! Checks that the encoder writes what it claims: table depth and size, exact string
//! lengths, packed bits.

use super::*;

/// Walk a table the simple (recursive) way: fine for the shallow tables of this test.
fn depth_of(buf: &[u8], table: bool) -> (usize, usize) {
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let mut pos = 4;
    let mut deepest = 0;
    while pos < 4 + len {
        if table {
            pos += 1 + buf[pos] as usize;
        }
        let tag = buf[pos];
        pos += 1;
        let size = match tag {
            b'V' => 0,
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'd' | b'T' => 8,
            b'S' | b'x' => 4 + u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize,
            b'A' | b'F' => {
                let (d, used) = depth_of(&buf[pos..], tag == b'F');
                deepest = deepest.max(d);
                used
            }
            other => panic!("bad tag {other}"),
        };
        pos += size;
    }
    assert_eq!(pos, 4 + len, "entries fill the table exactly");
    (deepest + 1, pos)
}

#[test]
fn tables_have_the_depth_and_size_they_claim() {
    let mut rng = Rng::new(7);
    for depth in [1, 2, 3, 17, MAX_DEPTH, MAX_DEPTH + 1, 200] {
        for breadth in [0, 3, 40] {
            let t = table(
                &mut rng,
                Shape {
                    depth,
                    breadth,
                    invalid_keys: true,
                    budget: 1 << 20,
                },
            );
            assert_eq!(t.depth, depth);
            let (d, used) = depth_of(&t.bytes, true);
            assert_eq!(
                (d, used),
                (depth, t.bytes.len()),
                "depth {depth} breadth {breadth}"
            );
        }
    }
    // 20,000 levels fit a 128 KiB frame, and writing them takes no recursion.
    let t = table(
        &mut rng,
        Shape {
            depth: 20_000,
            breadth: 2,
            invalid_keys: false,
            budget: 131_072 - 64,
        },
    );
    assert_eq!(t.depth, 20_000);
    assert!(t.bytes.len() <= 131_072 - 64);
}

#[test]
fn short_strings_are_exact() {
    let mut rng = Rng::new(3);
    for len in [0, 1, 2, 3, 4, 5, 254, 255] {
        let s = utf8(&mut rng, len);
        assert_eq!(s.len(), len);
        assert!(std::str::from_utf8(&s).is_ok());
        if len > 0 {
            assert!(std::str::from_utf8(&invalid_utf8(&mut rng, len)).is_err());
        }
    }
}

#[test]
fn bits_pack_into_octets() {
    let p = Args::new(1, 2)
        .bit(true)
        .bit(false)
        .bit(true)
        .short(7)
        .bit(true)
        .finish();
    assert_eq!(p, [0, 1, 0, 2, 0b101, 0, 7, 1]);
}
