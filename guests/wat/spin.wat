;; spin.wat -- a guest that never returns and never calls the host.
;;
;; _start loops forever doing arithmetic (an LCG on a global, so the loop has work to do).
;; No hostcall is ever made, so the only ways to stop it are the engine's epoch
;; interruption or fuel: this is the test case for "stop ends pure computation".
;;
;; Exports: memory (1 page), _start, counter (global: iterations so far, wraps).
(module
  (memory (export "memory") 1)
  (global $counter (export "counter") (mut i32) (i32.const 0))
  (global $x (mut i32) (i32.const 1))
  (func (export "_start")
    (loop $forever
      (global.set $x
        (i32.add (i32.mul (global.get $x) (i32.const 1103515245)) (i32.const 12345)))
      (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
      (br $forever)))
)
