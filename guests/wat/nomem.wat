;; nomem.wat -- a guest WITHOUT linear memory (no memory section, no "memory" export).
;;
;; The host resolves guest pointers through the "memory" export; when there is none,
;; every hostcall that touches guest memory must return -EFAULT (-14), docs/abi.md §1.1.
;;
;; Exports:
;;   call_<name>   forwards to the import, as in link_all.wat
;;   check()       makes one call of every kind whose FIRST check is a memory access and
;;                 returns how many did NOT return -14 (0 = correct host):
;;                   spear_epoll_wait   capacity cell read first
;;                   spear_fd_ctl       SET_FLAGS reads its length cell first
;;                   rtasr_ctl, mic_ctl length cell read first (any command)
;;                   rtasr_write        range check first (even for a bad fd)
;;                   log                range check (length 5)
;;                 rtasr_read/mic_read are left out: with an empty queue they answer
;;                 -11 before touching memory (docs/abi.md §10).
;;   failed_mask   global: bit k set if call k of check() did not return -14
;;   _start        traps (unreachable) unless check() returns 0
(module
  (import "spear" "spear_epoll_create" (func $epoll_create (result i32)))
  (import "spear" "spear_epoll_wait"
    (func $epoll_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_fd_ctl" (func $fd_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_create" (func $rtasr_create (result i32)))
  (import "spear" "rtasr_ctl" (func $rtasr_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_write" (func $rtasr_write (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_read" (func $rtasr_read (param i32 i32 i32) (result i32)))
  (import "spear" "mic_create" (func $mic_create (result i32)))
  (import "spear" "mic_ctl" (func $mic_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "mic_read" (func $mic_read (param i32 i32 i32) (result i32)))
  (import "spear" "log" (func $log (param i32 i32 i32) (result i32)))

  (global $failed_mask (export "failed_mask") (mut i32) (i32.const 0))

  (func (export "call_spear_epoll_create") (result i32) (call $epoll_create))
  (func (export "call_spear_epoll_wait") (param i32 i32 i32 i32) (result i32)
    (call $epoll_wait (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "call_spear_fd_ctl") (param i32 i32 i32 i32) (result i32)
    (call $fd_ctl (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "call_rtasr_create") (result i32) (call $rtasr_create))
  (func (export "call_rtasr_ctl") (param i32 i32 i32 i32) (result i32)
    (call $rtasr_ctl (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "call_rtasr_write") (param i32 i32 i32) (result i32)
    (call $rtasr_write (local.get 0) (local.get 1) (local.get 2)))
  (func (export "call_rtasr_read") (param i32 i32 i32) (result i32)
    (call $rtasr_read (local.get 0) (local.get 1) (local.get 2)))
  (func (export "call_mic_create") (result i32) (call $mic_create))
  (func (export "call_mic_ctl") (param i32 i32 i32 i32) (result i32)
    (call $mic_ctl (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "call_mic_read") (param i32 i32 i32) (result i32)
    (call $mic_read (local.get 0) (local.get 1) (local.get 2)))
  (func (export "call_log") (param i32 i32 i32) (result i32)
    (call $log (local.get 0) (local.get 1) (local.get 2)))

  ;; record call k: set bit k of failed_mask unless rc == -14
  (func $expect_efault (param $k i32) (param $rc i32)
    (if (i32.ne (local.get $rc) (i32.const -14))
      (then (global.set $failed_mask
              (i32.or (global.get $failed_mask) (i32.shl (i32.const 1) (local.get $k)))))))

  (func $check (export "check") (result i32)
    (local $ep i32) (local $asr i32) (local $mic i32)
    (global.set $failed_mask (i32.const 0))
    (local.set $ep (call $epoll_create))
    (local.set $asr (call $rtasr_create))
    (local.set $mic (call $mic_create))
    ;; 0: wait(epfd, out 16, cell 8, timeout 0)
    (call $expect_efault (i32.const 0)
      (call $epoll_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 0)))
    ;; 1: fd_ctl SET_FLAGS (1)
    (call $expect_efault (i32.const 1)
      (call $fd_ctl (local.get $asr) (i32.const 1) (i32.const 16) (i32.const 8)))
    ;; 2: rtasr_ctl GET_STATUS (3)
    (call $expect_efault (i32.const 2)
      (call $rtasr_ctl (local.get $asr) (i32.const 3) (i32.const 16) (i32.const 8)))
    ;; 3: rtasr_ctl CONNECT (2): the length cell is read even for CONNECT
    (call $expect_efault (i32.const 3)
      (call $rtasr_ctl (local.get $asr) (i32.const 2) (i32.const 0) (i32.const 8)))
    ;; 4: mic_ctl GET_STATUS (2)
    (call $expect_efault (i32.const 4)
      (call $mic_ctl (local.get $mic) (i32.const 2) (i32.const 16) (i32.const 8)))
    ;; 5: rtasr_write 4 bytes at 16
    (call $expect_efault (i32.const 5)
      (call $rtasr_write (local.get $asr) (i32.const 16) (i32.const 4)))
    ;; 6: rtasr_write with an invalid fd: the memory check still comes first
    (call $expect_efault (i32.const 6)
      (call $rtasr_write (i32.const 999) (i32.const 16) (i32.const 4)))
    ;; 7: log 5 bytes at 0
    (call $expect_efault (i32.const 7)
      (call $log (i32.const 2) (i32.const 0) (i32.const 5)))
    (i32.popcnt (global.get $failed_mask)))

  (func (export "_start")
    (if (i32.ne (call $check) (i32.const 0)) (then unreachable)))
)
