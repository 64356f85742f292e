{
  description = "Imago: a declarative, NixOS-style system image composer";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # Host tools the `imago` binary calls at run time.
      runtimeTools = pkgs: [
        pkgs.qemu
        pkgs.e2fsprogs
        pkgs.dosfstools
        pkgs.mtools
        pkgs.zstd
        pkgs.apt
        pkgs.dpkg
        pkgs.gnupg
      ];
    in
    {
      packages = forAll (pkgs: {
        default = pkgs.rustPlatform.buildRustPackage {
          pname = "imago";
          version = "0.1.0";
          src = self;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "-p" "imago" ];
          # The test suite boots virtual machines and downloads Debian packages.
          doCheck = false;
          nativeBuildInputs = [ pkgs.makeWrapper ];
          postInstall = ''
            mkdir -p $out/share/imago
            cp -r modules $out/share/imago/modules
            wrapProgram $out/bin/imago \
              --prefix PATH : ${pkgs.lib.makeBinPath (runtimeTools pkgs)} \
              --set-default IMAGO_MODULES $out/share/imago/modules \
              --set-default IMAGO_OVMF ${pkgs.OVMF.fd}/FV
          '';
          meta = {
            description = "A declarative system image composer";
            license = pkgs.lib.licenses.mit;
            mainProgram = "imago";
          };
        };
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.cargo-nextest
            pkgs.OVMF.fd
          ] ++ runtimeTools pkgs;
          IMAGO_OVMF = "${pkgs.OVMF.fd}/FV";
        };
      });
    };
}
