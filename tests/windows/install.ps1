#Requires -RunAsAdministrator
<#
.SYNOPSIS
  Installs and loads the wskudp driver on a Windows test VM (idempotent: run it again after
  every new build).
.DESCRIPTION
  From the VM folder 'cargo make' builds (target\<target>\<profile>\wskudp-vm: wskudp_package\,
  wskudpctl.exe, these scripts):
    1. checks the Windows build floor;
    2. turns test signing on if it is off (refusing under Secure Boot, where bcdedit cannot)
       and stops, exit code 3010: reboot, then run it again;
    3. trusts the package's test certificate (LocalMachine Root and TrustedPublisher);
    4. stops a loaded wskudp and removes earlier wskudp packages from the driver store;
    5. pnputil /add-driver wskudp.inf /install (a primitive driver: no device node);
    6. sc start wskudp, then `wskudpctl --backend device info` as a smoke test.
  Exit codes: 0 done; 3010 done but a reboot is needed first (test signing, or pnputil said
  so); anything else failed.
  NOT RUN by this project: no Windows machine was available to it.
.PARAMETER Folder
  The VM folder; default: the folder this script is in.
#>
param([string] $Folder)

. (Join-Path $PSScriptRoot 'common.ps1')

Assert-WindowsFloor
$Folder = Resolve-VmFolder $Folder
$package = Join-Path $Folder 'wskudp_package'
$cli = Join-Path $Folder 'wskudpctl.exe'

# Test-signed drivers load only when the system booted with test signing. The boot options
# of this boot are in the registry; bcdedit's listing is localized.
$bootOptions = (Get-ItemProperty 'HKLM:\SYSTEM\CurrentControlSet\Control').SystemStartOptions
if ($bootOptions -notmatch '\bTESTSIGNING\b') {
    $secureBoot = $false
    try { $secureBoot = Confirm-SecureBootUEFI } catch { $secureBoot = $false } # BIOS firmware
    if ($secureBoot) {
        throw 'Secure Boot is on, so test signing cannot be turned on (bcdedit fails). Turn ' +
            'Secure Boot off in the VM firmware (Hyper-V: Set-VMFirmware <vm> ' +
            '-EnableSecureBoot Off), boot, and run this script again.'
    }
    Invoke-Native bcdedit.exe @('/set', '{current}', 'testsigning', 'on') | Out-Null
    Write-Warning 'Test signing is now on for the next boot. Reboot, then run install.ps1 again.'
    exit $ERROR_SUCCESS_REBOOT_REQUIRED
}

# The test certificate 'cargo make' signed the package with (WDRLocalTestCert).
$cer = Join-Path $package 'WDRLocalTestCert.cer'
foreach ($store in @('Root', 'TrustedPublisher')) {
    Import-Certificate -FilePath $cer -CertStoreLocation "Cert:\LocalMachine\$store" | Out-Null
}

# An earlier install: unload it and take its packages out of the driver store, so the service
# runs this build's binary.
Stop-Driver
$rebootNeeded = $false
foreach ($old in Get-DriverPackages) {
    $code = Invoke-Native pnputil.exe @('/delete-driver', $old.Driver, '/uninstall') `
        -Success @(0, $ERROR_SUCCESS_REBOOT_REQUIRED)
    if ($code -eq $ERROR_SUCCESS_REBOOT_REQUIRED) { $rebootNeeded = $true }
}

$code = Invoke-Native pnputil.exe @('/add-driver', (Join-Path $package 'wskudp.inf'), '/install') `
    -Success @(0, $ERROR_SUCCESS_REBOOT_REQUIRED)
if ($code -eq $ERROR_SUCCESS_REBOOT_REQUIRED) { $rebootNeeded = $true }
if ($null -eq (Get-DriverService)) {
    throw "pnputil succeeded but there is no $ServiceName kernel service: check the INF."
}
if ($rebootNeeded) {
    Write-Warning 'pnputil asked for a reboot (3010). Reboot, then run install.ps1 again.'
    exit $ERROR_SUCCESS_REBOOT_REQUIRED
}

Start-Driver
Invoke-Native $cli @('--backend', 'device', 'info') | Out-Null
Write-Host "wskudp is loaded. CLI: $cli"
exit 0
