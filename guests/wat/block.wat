;; block.wat -- a guest that blocks forever inside a hostcall.
;;
;; _start creates an epoll that watches nothing and waits on it with timeout -1, so
;; spear_epoll_wait never returns by itself.  A stop request must wake the wait (the next
;; hostcall, or this one, traps).  If the wait ever returns, its result is kept.
;;
;; Exports: memory (1 page), _start, epfd and wait_rc (globals, -1 before the calls),
;;          returned (global: 1 once the wait returned).
(module
  (import "spear" "spear_epoll_create" (func $epoll_create (result i32)))
  (import "spear" "spear_epoll_wait"
    (func $epoll_wait (param $epfd i32) (param $out_ptr i32) (param $out_len_ptr i32) (param $timeout_ms i32) (result i32)))

  (memory (export "memory") 1)
  (global $epfd (export "epfd") (mut i32) (i32.const -1))
  (global $wait_rc (export "wait_rc") (mut i32) (i32.const -1))
  (global $returned (export "returned") (mut i32) (i32.const 0))

  (func (export "_start")
    (global.set $epfd (call $epoll_create))
    ;; length cell at 8: capacity 64 bytes (8 records) at address 16
    (i32.store (i32.const 8) (i32.const 64))
    (global.set $wait_rc
      (call $epoll_wait (global.get $epfd) (i32.const 16) (i32.const 8) (i32.const -1)))
    (global.set $returned (i32.const 1)))
)
