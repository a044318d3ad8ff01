package lwm2m

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// ErrNotRegistered is returned for a request to an endpoint that has no
// live registration, or whose registration ended while the request waited.
var ErrNotRegistered = errors.New("endpoint not registered")

// ErrTimeout is returned when a device did not answer within the request
// timeout (or the caller's deadline, whichever came first).
var ErrTimeout = errors.New("device request timed out")

// ErrNotObservable is returned by Observe when the device answered the
// request without the Observe option, that is, it refused to keep the
// observation.
var ErrNotObservable = errors.New("device did not accept the observation")

// ResponseError is a CoAP answer from the device that is not the success
// code of the operation (4.04 Not Found, 4.05 Method Not Allowed, ...).
type ResponseError struct {
	Code    codes.Code
	Message string // the diagnostic payload, if the device sent one
}

func (e *ResponseError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("device answered %s", codeString(e.Code))
	}
	return fmt.Sprintf("device answered %s: %s", codeString(e.Code), e.Message)
}

// codeString formats a CoAP code as "4.04 NotFound".
func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d %s", uint8(c)>>5, uint8(c)&0x1f, c.String())
}

// ErrNoSession is the error of a request to a device registered over DTLS
// whose session has closed: only the device can open a new one, which it
// does with its next message.
var ErrNoSession = errors.New("no DTLS session with the device: waiting for it to connect")
