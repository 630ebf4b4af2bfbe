;; epoll_basics.wat -- the smallest useful epoll guest, written by hand to be read.
;;
;; _start does five hostcalls and keeps every result:
;;
;;   epfd     = spear_epoll_create()                       -> 1000 on a fresh instance
;;   asrfd    = rtasr_create()                              -> 1001
;;   ctl_rc   = spear_epoll_ctl(epfd, ADD=1, asrfd, 0x1d)   IN|OUT|ERR|HUP -> 0
;;   wait_rc  = spear_epoll_wait(epfd, 16, 8, 0)            timeout 0: poll -> 1 record
;;              (capacity cell at address 8 holds 64 = room for 8 records at address 16)
;;   close_rc = rtasr_close(asrfd); spear_epoll_close(epfd) -> 0
;;
;; A fresh rtasr fd can be written to, so the one record is {fd 1001, events 0x4 = OUT}.
;;
;; Exports:
;;   memory                      the records: address 16 = fd (i32), 20 = events (i32), ...
;;                               address 8 = length cell (bytes written, 8 per record)
;;   epfd asrfd ctl_rc wait_rc close_rc   globals with the results (-1 before _start)
;;   wait_len                    the length cell after the wait
;;   record_fd(i) record_events(i)        record i of the last wait
;;   _start                      runs the sequence once
(module
  (import "spear" "spear_epoll_create" (func $epoll_create (result i32)))
  (import "spear" "spear_epoll_ctl"
    (func $epoll_ctl (param $epfd i32) (param $op i32) (param $fd i32) (param $events i32) (result i32)))
  (import "spear" "spear_epoll_wait"
    (func $epoll_wait (param $epfd i32) (param $out_ptr i32) (param $out_len_ptr i32) (param $timeout_ms i32) (result i32)))
  (import "spear" "spear_epoll_close" (func $epoll_close (param $epfd i32) (result i32)))
  (import "spear" "rtasr_create" (func $rtasr_create (result i32)))
  (import "spear" "rtasr_close" (func $rtasr_close (param $fd i32) (result i32)))

  (memory (export "memory") 1)

  ;; layout of linear memory
  ;;   8: u32 length cell for spear_epoll_wait
  ;;  16: up to 8 records of 8 bytes {i32 fd, i32 events}
  (global $CELL i32 (i32.const 8))
  (global $RECORDS i32 (i32.const 16))

  (global $epfd (export "epfd") (mut i32) (i32.const -1))
  (global $asrfd (export "asrfd") (mut i32) (i32.const -1))
  (global $ctl_rc (export "ctl_rc") (mut i32) (i32.const -1))
  (global $wait_rc (export "wait_rc") (mut i32) (i32.const -1))
  (global $wait_len (export "wait_len") (mut i32) (i32.const -1))
  (global $close_rc (export "close_rc") (mut i32) (i32.const -1))

  (func (export "_start")
    ;; 1. an epoll fd and a realtime-ASR fd
    (global.set $epfd (call $epoll_create))
    (global.set $asrfd (call $rtasr_create))

    ;; 2. watch the rtasr fd for IN|OUT|ERR|HUP (0x001|0x004|0x008|0x010 = 0x1d);
    ;;    ERR and HUP are reported only if they are in this mask
    (global.set $ctl_rc
      (call $epoll_ctl (global.get $epfd) (i32.const 1) (global.get $asrfd) (i32.const 0x1d)))

    ;; 3. poll (timeout 0): capacity 64 bytes = 8 records
    (i32.store (global.get $CELL) (i32.const 64))
    (global.set $wait_rc
      (call $epoll_wait (global.get $epfd) (global.get $RECORDS) (global.get $CELL) (i32.const 0)))
    (global.set $wait_len (i32.load (global.get $CELL)))

    ;; 4. close both (closing is idempotent; any close call closes any kind)
    (global.set $close_rc
      (i32.or (call $rtasr_close (global.get $asrfd))
              (call $epoll_close (global.get $epfd)))))

  ;; record i of the last wait
  (func (export "record_fd") (param $i i32) (result i32)
    (i32.load (i32.add (global.get $RECORDS) (i32.mul (local.get $i) (i32.const 8)))))
  (func (export "record_events") (param $i i32) (result i32)
    (i32.load offset=4 (i32.add (global.get $RECORDS) (i32.mul (local.get $i) (i32.const 8)))))
)
