package registry

import "time"

// Params returns the device's registration and bootstrap parameters by
// their camelCase names, as the bootstrap resource of the API shows them:
// every field but the identity, the credentials and the keys.
func (d Device) Params() map[string]any {
	p := map[string]any{
		"endpointId":             d.EndpointID,
		"lwm2mServerUri":         d.ServerURI,
		"securityMode":           d.SecurityMode,
		"bindingMode":            d.BindingMode,
		"binaryDeliveryEncoding": d.BinaryDeliveryEncoding,
	}
	set := func(k string, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set("serverPublicKey", d.ServerPublicKey)
	set("lwm2mPskId", d.PSKID)
	set("bootstrapPskId", d.BootstrapPSKID)
	set("fwUpdateDeliveryMethod", d.FwUpdateDeliveryMethod)
	set("fwUpdateSupportedDeviceProtocol", d.FwUpdateSupportedDeviceProtocol)
	set("fwUpdateResetMechanism", d.FwUpdateResetMechanism)
	set("fwUpdateURL", d.FwUpdateURL)
	ms := func(k string, v *time.Duration) {
		if v != nil {
			p[k] = v.Milliseconds()
		}
	}
	ms("awakeTimeRegistrationParameter", d.AwakeTime)
	ms("lwm2mRequestTimeout", d.RequestTimeout)
	for k, v := range map[string]*int{
		"securityInstanceOffset": d.SecurityInstanceOffset,
		"bootstrapShortServerId": d.BootstrapShortServerID,
		"lwm2mShortServerId":     d.LwM2MShortServerID,
		"registrationLifetime":   d.RegistrationLifetime,
		"defaultMinimumPeriod":   d.DefaultMinimumPeriod,
		"defaultMaximumPeriod":   d.DefaultMaximumPeriod,
		"disableTimeout":         d.DisableTimeout,
	} {
		if v != nil {
			p[k] = *v
		}
	}
	for k, v := range map[string]*bool{
		"generateBootstrapServerConfig": d.GenerateBootstrapServerConfig,
		"notificationIfDisabled":        d.NotificationIfDisabled,
	} {
		if v != nil {
			p[k] = *v
		}
	}
	return p
}
