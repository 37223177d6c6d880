;; FastCDC's gear scan, the hot loop of chunking (the definition and the
;; format it fixes are in chunker.ts). WebAssembly runs it about twice as fast
;; as the same loop in JavaScript: byte loads without bounds checks, and the
;; hash stays in a register.
;;
;; It works on Strata's shared memory (storage/memory.ts), which holds the
;; tables at fixed addresses and the bytes to scan:
;;   [0, 1024)     GEAR[b], i32 little-endian
;;   [1024, 2048)  GEAR[b] << 1
;;
;; scan(start, end, fp, mask) rolls fp over the bytes at [start, end), two per
;; step (after the first byte of a pair the hash is kept shifted left by one
;; and tested against mask << 1, exact because bit 31 is not in the mask), and
;; returns the address just past the first byte where (fp & mask) == 0, or -1
;; with the final hash in the global `leftover`.
;;
;; Built into gear-wasm.ts by `npm run build:wasm`; a test checks that file
;; matches this one.
(module
  (import "strata" "memory" (memory 1 65536 shared))
  (global $leftover (export "leftover") (mut i32) (i32.const 0))
  (func (export "scan") (param $i i32) (param $end i32) (param $fp i32) (param $mask i32) (result i32)
    (local $maskShifted i32)
    (local $pairsEnd i32)
    (local.set $maskShifted (i32.shl (local.get $mask) (i32.const 1)))
    (local.set $pairsEnd
      (i32.sub (local.get $end) (i32.and (i32.sub (local.get $end) (local.get $i)) (i32.const 1))))
    (block $pairsDone
      (loop $pairs
        (br_if $pairsDone (i32.ge_u (local.get $i) (local.get $pairsEnd)))
        (local.set $fp
          (i32.add
            (i32.shl (local.get $fp) (i32.const 2))
            (i32.load offset=1024 (i32.shl (i32.load8_u (local.get $i)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $fp) (local.get $maskShifted)))
          (then (return (i32.add (local.get $i) (i32.const 1)))))
        (local.set $fp
          (i32.add
            (local.get $fp)
            (i32.load (i32.shl (i32.load8_u offset=1 (local.get $i)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $fp) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 2)))))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $pairs)))
    (if (i32.lt_u (local.get $i) (local.get $end))
      (then
        (local.set $fp
          (i32.add
            (i32.shl (local.get $fp) (i32.const 1))
            (i32.load (i32.shl (i32.load8_u (local.get $i)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $fp) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 1)))))))
    (global.set $leftover (local.get $fp))
    (i32.const -1)))
