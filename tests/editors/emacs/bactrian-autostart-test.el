;;; bactrian-autostart-test.el --- No sidecar answers: the client starts one  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_autostart.py with no sidecar on BACTRIAN_TEST_SOCKET and the
;; command that starts one in BACTRIAN_TEST_SERVE (a JSON list).

;;; Code:

(require 'bactrian-test)

(ert-deftest bactrian-starts-the-sidecar ()
  "With `bactrian-start-server' t, connecting starts `bactrian-server-command'."
  (should-not (file-exists-p bactrian-socket))
  (let ((bactrian-start-server t)
        (bactrian-server-command (append (json-parse-string (getenv "BACTRIAN_TEST_SERVE")) nil)))
    (bactrian-connect))
  (bactrian-test--wait (lambda () (eq bactrian--state 'connected)) "the connection")
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (bactrian-test--ask "add a double function")
    (should (string-match-p "^\\+let double t = t \\* 2$" (bactrian-test--conversation)))))

(ert-deftest bactrian-never-starts-unasked ()
  "With `bactrian-start-server' nil, connecting fails with what to do."
  (let ((bactrian-start-server nil))
    (should (string-match-p "bactrian aid is not running: start it with `bactrian aid serve'"
                            (cadr (should-error (bactrian-connect) :type 'user-error))))))

(provide 'bactrian-autostart-test)
;;; bactrian-autostart-test.el ends here
